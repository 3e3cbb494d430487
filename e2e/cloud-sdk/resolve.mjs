#!/usr/bin/env node
// Runs SAP Cloud SDK for JavaScript (@sap-cloud-sdk/connectivity, unmodified)
// against a Signpost server, service-token-only flow (no user JWT).
//
// Input (environment):
//   SIGNPOST_SERVICE_KEY   path to a JSON file with a Signpost service key
//                          (clientid, clientsecret, url, uri, uaadomain, ...)
//   SIGNPOST_DESTINATIONS  comma-separated destination names for getDestination()
//                          (may be empty: then only the list call runs)
//   SIGNPOST_BINDING_NAME  optional, name of the fake destination binding
//                          (default "signpost-dest")
//
// Output: exactly one JSON object on stdout:
//   {"destinations": {"<name>": <Destination or null>},
//    "all": [<Destination>, ...],
//    "errors": [{"call", "name"?, "message"}]}
// Each non-null destination carries an extra "targetHeaders" field: the headers
// the SDK would send to the destination's target (buildHeadersForDestination).
// Everything the SDK logs goes to stderr (SAP_CLOUD_SDK_LOG_LEVEL=debug shows more). Exit code: 0 if no call threw,
// 1 if any call threw (message and stack on stderr), 2 on bad input.

import { readFileSync } from 'node:fs';

// The SDK's logger (winston Console transport) writes to process.stdout.
// Keep stdout for our single JSON object: send every other write to stderr.
const writeStdout = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

function fail(message, code = 2) {
  process.stderr.write(`resolve.mjs: ${message}\n`);
  process.exit(code);
}

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

const names = (process.env.SIGNPOST_DESTINATIONS || '')
  .split(',')
  .map(name => name.trim())
  .filter(name => name !== '');

// The binding must exist before the SDK is loaded (it reads VCAP_SERVICES
// through @sap/xsenv). Nothing else may supply destinations: the SDK looks at
// the `destinations` variable before it asks the destination service.
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

const {
  getDestination,
  getAllDestinationsFromDestinationService,
  buildHeadersForDestination
} = await import('@sap-cloud-sdk/connectivity');

const errors = [];
function record(call, name, err) {
  errors.push({ call, ...(name === undefined ? {} : { name }), message: err.message });
  // ErrorWithCause (the SDK's error type) already puts its causes in `stack`.
  const stack = String(err.stack || err);
  const cause =
    err.cause && !stack.includes('Caused by') ? `caused by: ${err.cause.stack || err.cause}\n` : '';
  process.stderr.write(
    `resolve.mjs: ${call}${name === undefined ? '' : `(${name})`} threw: ${err.message}\n${stack}\n${cause}`
  );
}

// Without a `jwt` option the SDK fetches a client-credentials token with the
// binding's credentials and looks only at the provider account.
const destinations = {};
for (const name of names) {
  try {
    const destination = await getDestination({ destinationName: name, useCache: false });
    if (destination) {
      try {
        destination.targetHeaders = await buildHeadersForDestination(destination);
      } catch (err) {
        record('buildHeadersForDestination', name, err);
        destination.targetHeaders = null;
      }
    }
    destinations[name] = destination ?? null;
  } catch (err) {
    record('getDestination', name, err);
    destinations[name] = null;
  }
}

let all = [];
try {
  all = await getAllDestinationsFromDestinationService({ useCache: false });
} catch (err) {
  record('getAllDestinationsFromDestinationService', undefined, err);
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

writeStdout(JSON.stringify({ destinations, all, errors }, jsonSafe, 2) + '\n', () => {
  process.exit(errors.length ? 1 : 0);
});
