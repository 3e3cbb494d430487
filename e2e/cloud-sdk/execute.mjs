#!/usr/bin/env node
// Runs SAP Cloud SDK for JavaScript (@sap-cloud-sdk/connectivity and @sap-cloud-sdk/http-client,
// unmodified) against a Signpost server: a list of getDestination and executeHttpRequest calls,
// each optionally on behalf of a user (the SDK's `jwt` option).
//
// Input (environment):
//   SIGNPOST_SERVICE_KEY   path to a JSON file with a Signpost service key
//   SIGNPOST_CALLS         JSON array of calls, run one after the other:
//       {"call": "getDestination" | "executeHttpRequest",
//        "destinationName": "<name>",
//        "jwt": "<user JWT>",                       optional: the SDK's `jwt` option
//        "selectionStrategy": "alwaysProvider" | "alwaysSubscriber" | "subscriberFirst",
//                                                   optional (SDK default: subscriberFirst)
//        "request": {"method": "get", "url": "/path", "headers": {...}}
//                                                   executeHttpRequest only (default GET "")}
//   SIGNPOST_BINDING_NAME  optional, name of the fake destination binding
//
// Every call passes `useCache: false`, so each one reaches Signpost.
//
// Output: exactly one JSON object on stdout:
//   {"results": [{"call", "destinationName",
//                 "destination": <Destination or null>,        getDestination
//                 "response": {"status", "headers", "data"},    executeHttpRequest
//                 "error": null | {"message", "status"?, "data"?}}],
//    "errors": [{"call", "name", "message"}]}
// A destination carries an extra "targetHeaders" field: the headers the SDK would send to its
// target (buildHeadersForDestination). Exit code: 0 if no call threw, 1 if any call threw
// (message and stack on stderr), 2 on bad input.

import { Errors, fail, finish, installBinding, readServiceKey } from './lib.mjs';

const key = readServiceKey();

let calls;
try {
  calls = JSON.parse(process.env.SIGNPOST_CALLS || '[]');
} catch (err) {
  fail(`SIGNPOST_CALLS is not JSON: ${err.message}`);
}
if (!Array.isArray(calls)) fail('SIGNPOST_CALLS must be a JSON array');
for (const [i, c] of calls.entries()) {
  if (c?.call !== 'getDestination' && c?.call !== 'executeHttpRequest') {
    fail(`SIGNPOST_CALLS[${i}].call must be getDestination or executeHttpRequest`);
  }
  if (typeof c.destinationName !== 'string' || c.destinationName === '') {
    fail(`SIGNPOST_CALLS[${i}] lacks destinationName`);
  }
}

installBinding(key);

const connectivity = await import('@sap-cloud-sdk/connectivity');
const { executeHttpRequest } = await import('@sap-cloud-sdk/http-client');
const { getDestination, buildHeadersForDestination } = connectivity;

const strategies = {
  alwaysProvider: connectivity.alwaysProvider,
  alwaysSubscriber: connectivity.alwaysSubscriber,
  subscriberFirst: connectivity.subscriberFirst
};

/** The SDK's DestinationFetchOptions for one call. */
function fetchOptions(c) {
  const options = { destinationName: c.destinationName, useCache: false };
  if (c.jwt !== undefined) options.jwt = c.jwt;
  if (c.selectionStrategy !== undefined) {
    const strategy = strategies[c.selectionStrategy];
    if (!strategy) fail(`unknown selectionStrategy ${c.selectionStrategy}`);
    options.selectionStrategy = strategy;
  }
  return options;
}

/** What a failed call tells: the message, and the HTTP answer behind it when there was one. */
function describeError(err) {
  const out = { message: err.message };
  let e = err;
  while (e) {
    if (e.response && typeof e.response.status === 'number') {
      out.status = e.response.status;
      out.data = e.response.data;
      break;
    }
    e = e.cause;
  }
  return out;
}

const errors = new Errors();
const results = [];
for (const c of calls) {
  const result = { call: c.call, destinationName: c.destinationName, error: null };
  results.push(result);
  try {
    if (c.call === 'getDestination') {
      const destination = await getDestination(fetchOptions(c));
      if (destination) {
        destination.targetHeaders = await buildHeadersForDestination(destination);
      }
      result.destination = destination ?? null;
    } else {
      const request = { method: 'get', url: '', ...(c.request ?? {}) };
      const response = await executeHttpRequest(fetchOptions(c), request);
      result.response = {
        status: response.status,
        headers: { ...response.headers },
        data: response.data
      };
    }
  } catch (err) {
    errors.record(c.call, c.destinationName, err);
    result.error = describeError(err);
  }
}

finish({ results, errors: errors.list }, errors);
