// Shared by resolve.mjs and execute.mjs: stdout kept for one JSON object, the service key read
// from SIGNPOST_SERVICE_KEY, the destination binding in VCAP_SERVICES, error recording and JSON
// output. Import this module BEFORE any @sap-cloud-sdk package: the SDK reads VCAP_SERVICES
// (through @sap/xsenv) when it is loaded.

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const script = basename(process.argv[1] ?? 'cloud-sdk');

// The SDK's logger (winston Console transport) writes to process.stdout.
// Keep stdout for our single JSON object: send every other write to stderr.
const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

/** Prints `message` on stderr and exits with `code` (2: bad input). */
export function fail(message, code = 2) {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(code);
}

/** Reads and checks the service key named by SIGNPOST_SERVICE_KEY. */
export function readServiceKey() {
  const keyPath = process.env.SIGNPOST_SERVICE_KEY;
  if (!keyPath) {
    fail('SIGNPOST_SERVICE_KEY must name a JSON file holding a Signpost service key');
  }
  let key;
  try {
    key = JSON.parse(readFileSync(keyPath, 'utf8'));
  } catch (err) {
    fail(`cannot read service key ${keyPath}: ${err.message}`);
  }
  for (const field of ['clientid', 'clientsecret', 'url', 'uri']) {
    if (typeof key[field] !== 'string' || key[field] === '') {
      fail(`service key ${keyPath} lacks "${field}"`);
    }
  }
  return key;
}

/**
 * Puts one destination binding (credentials = `key`) into VCAP_SERVICES and unsets the
 * `destinations` variable, so nothing but the destination service can supply destinations.
 * Returns the binding's name (SIGNPOST_BINDING_NAME, default "signpost-dest").
 */
export function installBinding(key) {
  const bindingName = process.env.SIGNPOST_BINDING_NAME || 'signpost-dest';
  process.env.VCAP_SERVICES = JSON.stringify({
    destination: [
      {
        name: bindingName,
        instance_name: bindingName,
        binding_name: null,
        label: 'destination',
        plan: 'lite',
        provider: null,
        syslog_drain_url: null,
        tags: ['destination', 'conn', 'connsvc'],
        volume_mounts: [],
        credentials: key
      }
    ]
  });
  delete process.env.destinations;
  return bindingName;
}

/** Collects the calls that threw; each one is also printed to stderr with its stack and causes. */
export class Errors {
  constructor() {
    this.list = [];
  }

  record(call, name, err) {
    this.list.push({ call, ...(name === undefined ? {} : { name }), message: err.message });
    // ErrorWithCause (the SDK's error type) already puts its causes in `stack`.
    const stack = String(err.stack || err);
    const cause =
      err.cause && !stack.includes('Caused by') ? `caused by: ${err.cause.stack || err.cause}\n` : '';
    process.stderr.write(
      `${script}: ${call}${name === undefined ? '' : `(${name})`} threw: ${err.message}\n${stack}\n${cause}`
    );
  }
}

// Destination objects are plain data; guard against anything that is not.
function jsonSafe(_key, value) {
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value === 'bigint') return value.toString();
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return { base64: Buffer.from(value.data).toString('base64') };
  }
  return value;
}

/** Writes `result` as the one JSON object on stdout, then exits (1 if anything threw). */
export function finish(result, errors) {
  writeStdout(JSON.stringify(result, jsonSafe, 2) + '\n', () => {
    process.exit(errors.list.length ? 1 : 0);
  });
}
