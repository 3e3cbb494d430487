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

import { Errors, finish, installBinding, readServiceKey } from './lib.mjs';

const key = readServiceKey();

const names = (process.env.SIGNPOST_DESTINATIONS || '')
  .split(',')
  .map(name => name.trim())
  .filter(name => name !== '');

// The binding must exist before the SDK is loaded (it reads VCAP_SERVICES
// through @sap/xsenv). Nothing else may supply destinations: the SDK looks at
// the `destinations` variable before it asks the destination service.
installBinding(key);

const {
  getDestination,
  getAllDestinationsFromDestinationService,
  buildHeadersForDestination
} = await import('@sap-cloud-sdk/connectivity');

const errors = new Errors();

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
        errors.record('buildHeadersForDestination', name, err);
        destination.targetHeaders = null;
      }
    }
    destinations[name] = destination ?? null;
  } catch (err) {
    errors.record('getDestination', name, err);
    destinations[name] = null;
  }
}

let all = [];
try {
  all = await getAllDestinationsFromDestinationService({ useCache: false });
} catch (err) {
  errors.record('getAllDestinationsFromDestinationService', undefined, err);
}

finish({ destinations, all, errors: errors.list }, errors);
