// A real OAuth2 authorization server for Signpost's token-flow tests.
//
// It runs oauth2-mock-server's OAuth2Server (RS256 key it generates, JWKS at /jwks, token
// endpoint /token, issuer = its own URL) behind a thin node:http layer that adds what the
// off-the-shelf server lacks, through its extension points (the `beforeTokenSigning` and
// `beforeResponse` events) and by delegating every token request to its own token handler:
//
//   * client authentication that is checked (form body, HTTP Basic per RFC 6749 §2.3.1,
//     client_assertion), with 401 {"error":"invalid_client"} when wrong;
//   * grant checks: password against configured users, authorization_code against configured
//     codes (redirect_uri, PKCE code_verifier), refresh_token, and the extension grants
//     jwt-bearer (RFC 7523), token-exchange (RFC 8693) and saml2-bearer (RFC 7522);
//   * a token endpoint under any path prefix (`/token`, `/oauth/token`, `/<tenant>/token`);
//   * control endpoints for tests: POST /__config, GET|DELETE /__requests, POST /__user_token.
//
// Usage: node server.mjs [--port N] [--watch-stdin]
//   Prints ONE line {"url":"http://127.0.0.1:PORT"} on stdout when ready; nothing else goes to
//   stdout. Errors go to stderr. With --watch-stdin it exits when its stdin closes (so it dies
//   with the test process that spawned it).

import http from 'node:http';
import crypto from 'node:crypto';
import { OAuth2Server } from 'oauth2-mock-server';

const HOST = '127.0.0.1';
const MAX_BODY = 1024 * 1024;

const GRANT_JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const GRANT_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const GRANT_SAML2_BEARER = 'urn:ietf:params:oauth:grant-type:saml2-bearer';
const ASSERTION_JWT = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_SAML = 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer';
const TT_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';
// Claims copied from a user assertion (jwt-bearer, token-exchange subject) into the issued token.
const USER_CLAIMS = [
  'sub',
  'user_name',
  'email',
  'given_name',
  'family_name',
  'user_uuid',
  'user_id',
  'origin',
  'zid',
];

// ---------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const out = { port: Number(process.env.PORT ?? 0), watchStdin: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') out.port = Number(argv[++i]);
    else if (argv[i] === '--watch-stdin') out.watchStdin = true;
    else fail(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) fail('bad --port');
  return out;
}

function fail(msg) {
  process.stderr.write(`oauth-server: ${msg}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// State

function defaultConfig() {
  return {
    clients: [],
    users: [],
    codes: [],
    refresh_tokens: null,
    token_lifetime: 300,
    fail: null,
    delay_ms: 0,
    extra_claims: {},
    extra_response: {},
  };
}

let config = defaultConfig();
let requests = [];
// Refresh tokens this server issued → the user claims of the grant that issued them.
const issuedRefreshTokens = new Map();
const usedCodes = new Set();

const CONFIG_KEYS = new Set(Object.keys(defaultConfig()));

// Applies a POST /__config body: the keys given replace the current ones (after `reset: true`
// restores the defaults). All or nothing: on an error the config in force stays as it was.
function applyConfig(patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw new Error('config must be a JSON object');
  }
  const next = patch.reset === true ? defaultConfig() : { ...config };
  for (const [k, v] of Object.entries(patch)) {
    if (k === 'reset') continue;
    if (!CONFIG_KEYS.has(k)) throw new Error(`unknown config key ${k}`);
    next[k] = v;
  }
  for (const k of ['clients', 'users', 'codes']) {
    if (next[k] === null || next[k] === undefined) next[k] = [];
    if (!Array.isArray(next[k])) throw new Error(`${k} must be an array`);
  }
  for (const c of next.clients) {
    if (typeof c?.id !== 'string') throw new Error('every client needs a string id');
  }
  for (const u of next.users) {
    if (typeof u?.username !== 'string') throw new Error('every user needs a string username');
  }
  for (const c of next.codes) {
    if (typeof c?.code !== 'string') throw new Error('every code needs a string code');
  }
  if (next.refresh_tokens === undefined) next.refresh_tokens = null;
  if (next.refresh_tokens !== null && !Array.isArray(next.refresh_tokens)) {
    throw new Error('refresh_tokens must be an array or null');
  }
  if (typeof next.token_lifetime !== 'number' || next.token_lifetime < 0) {
    throw new Error('token_lifetime must be a number of seconds >= 0');
  }
  if (typeof next.delay_ms !== 'number' || next.delay_ms < 0) {
    throw new Error('delay_ms must be a number >= 0');
  }
  if (next.fail !== null && next.fail !== undefined) {
    const f = next.fail;
    if (typeof f !== 'object') throw new Error('fail must be an object or null');
    next.fail = {
      status: Number(f.status ?? 500),
      body: f.body === undefined ? '{"error":"server_error"}' : String(f.body),
      count: f.count === undefined ? 1 : Number(f.count),
      content_type: f.content_type ?? 'application/json',
    };
    if (!Number.isInteger(next.fail.status) || next.fail.status < 100 || next.fail.status > 599) {
      throw new Error('fail.status must be an HTTP status');
    }
  } else {
    next.fail = null;
  }
  next.extra_claims ??= {};
  next.extra_response ??= {};
  if (patch.reset === true) {
    issuedRefreshTokens.clear();
    usedCodes.clear();
  }
  config = next;
}

// ---------------------------------------------------------------------------------------------
// The off-the-shelf server

const oauth = new OAuth2Server();
const service = oauth.service;
const issuer = oauth.issuer;
await issuer.keys.generate('RS256');
const signingJwk = issuer.keys.toJSON()[0];
const signingKid = signingJwk.kid;
const publicKey = crypto.createPublicKey({ key: signingJwk, format: 'jwk' });
const mockHandler = service.requestHandler;

// Extension point 1: shape every token the server signs for a token request.
service.on('beforeTokenSigning', (token, req) => {
  const ctx = req.signpost;
  if (!ctx) return;
  const p = token.payload;
  p.exp = p.iat + ctx.lifetime;
  ctx.signed += 1;
  if (ctx.signed > 1) return; // the id_token the server adds for user grants: lifetime only
  if (ctx.scope !== undefined) p.scope = ctx.scope;
  else delete p.scope;
  p.client_id = ctx.clientId;
  p.cid = ctx.clientId;
  p.azp = ctx.clientId;
  p.grant_type = ctx.grantType;
  p.jti = crypto.randomUUID();
  if (p.sub === undefined || p.sub === 'johndoe') p.sub = ctx.clientId;
  Object.assign(p, ctx.claims);
  Object.assign(p, config.extra_claims ?? {});
});

// Extension point 2: shape the token response.
service.on('beforeResponse', (response, req) => {
  const ctx = req.signpost;
  if (!ctx || response.statusCode !== 200 || typeof response.body !== 'object') return;
  const b = response.body;
  b.expires_in = ctx.lifetime;
  if (ctx.scope !== undefined) b.scope = ctx.scope;
  else delete b.scope;
  if (ctx.refresh) b.refresh_token ??= crypto.randomUUID();
  else delete b.refresh_token;
  if (!ctx.idToken) delete b.id_token;
  if (ctx.issuedTokenType) b.issued_token_type = ctx.issuedTokenType;
  if (b.refresh_token) issuedRefreshTokens.set(b.refresh_token, ctx.claims);
  Object.assign(b, config.extra_response ?? {});
});

// ---------------------------------------------------------------------------------------------
// Helpers

class OAuthError extends Error {
  constructor(status, error, description) {
    super(description ?? error);
    this.status = status;
    this.error = error;
    this.description = description;
  }
}

const invalidClient = (d) => new OAuthError(401, 'invalid_client', d);
const invalidGrant = (d) => new OAuthError(400, 'invalid_grant', d);
const invalidRequest = (d) => new OAuthError(400, 'invalid_request', d);

function sendJson(res, status, body, extraHeaders = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    ...extraHeaders,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new OAuthError(413, 'invalid_request', 'body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// URLSearchParams → {name: value} with a repeated name giving an array of its values.
function paramsToObject(params) {
  const out = {};
  for (const [k, v] of params) {
    if (!(k in out)) out[k] = v;
    else if (Array.isArray(out[k])) out[k].push(v);
    else out[k] = [out[k], v];
  }
  return out;
}

// One value of a form field: the first one if repeated.
function one(form, name) {
  const v = form[name];
  return Array.isArray(v) ? v[0] : v;
}

// application/x-www-form-urlencoded decoding of one Basic part (RFC 6749 §2.3.1).
function formDecode(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return null;
  }
}

function parseBasic(header) {
  if (typeof header !== 'string') return null;
  const m = /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!m) return null;
  const raw = Buffer.from(m[1], 'base64').toString('utf8');
  const i = raw.indexOf(':');
  if (i < 0) return { bad: true };
  const id = formDecode(raw.slice(0, i));
  const secret = formDecode(raw.slice(i + 1));
  if (id === null || secret === null) return { bad: true };
  return { id, secret };
}

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// Decodes a JWT; `null` when it is not one.
function decodeJwt(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = b64urlJson(parts[0]);
    const payload = b64urlJson(parts[1]);
    if (typeof header !== 'object' || typeof payload !== 'object' || !header || !payload) {
      return null;
    }
    return { header, payload, parts };
  } catch {
    return null;
  }
}

function isOurs(jwt) {
  return jwt.header.kid === signingKid || jwt.payload.iss === issuer.url;
}

// Verifies a JWT that claims to be ours: RS256 signature with our key, exp, nbf.
function verifyOurs(jwt, what) {
  if (jwt.header.alg !== 'RS256') throw invalidGrant(`${what}: alg must be RS256`);
  const ok = crypto.verify(
    'RSA-SHA256',
    Buffer.from(`${jwt.parts[0]}.${jwt.parts[1]}`),
    publicKey,
    Buffer.from(jwt.parts[2], 'base64url'),
  );
  if (!ok) throw invalidGrant(`${what}: signature does not verify with this server's key`);
  const now = Math.floor(Date.now() / 1000);
  if (typeof jwt.payload.exp === 'number' && jwt.payload.exp < now) {
    throw invalidGrant(`${what}: expired`);
  }
  if (typeof jwt.payload.nbf === 'number' && jwt.payload.nbf > now + 60) {
    throw invalidGrant(`${what}: not yet valid`);
  }
}

function pickUserClaims(payload) {
  const out = {};
  for (const k of USER_CLAIMS) if (payload[k] !== undefined) out[k] = payload[k];
  return out;
}

function decodeBase64Loose(s) {
  const norm = s.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(norm)) return null;
  return Buffer.from(norm, 'base64').toString('utf8');
}

function xmlUnescape(s) {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

function findClient(id) {
  return config.clients.find((c) => c.id === id);
}

// ---------------------------------------------------------------------------------------------
// Client authentication

function authenticateClient(req, form, record) {
  const basic = parseBasic(req.headers.authorization);
  const assertion = one(form, 'client_assertion');
  const assertionType = one(form, 'client_assertion_type');
  const bodyId = one(form, 'client_id');
  const bodySecret = one(form, 'client_secret');

  if (basic) {
    record.client_auth = { method: 'basic', client_id: basic.id ?? null };
    if (basic.bad) throw invalidClient('malformed Basic credentials');
    const c = findClient(basic.id);
    if (!c) throw invalidClient('unknown client');
    if (typeof c.secret === 'string' && c.secret !== basic.secret) {
      throw invalidClient('wrong client secret');
    }
    return c.id;
  }

  if (assertion !== undefined || assertionType !== undefined) {
    record.client_auth = { method: 'client_assertion', client_id: bodyId ?? null };
    if (!assertion) throw invalidClient('client_assertion missing');
    if (assertionType !== ASSERTION_JWT && assertionType !== ASSERTION_SAML) {
      throw invalidClient('unsupported client_assertion_type');
    }
    let id = bodyId;
    const jwt = assertionType === ASSERTION_JWT ? decodeJwt(assertion) : null;
    if (assertionType === ASSERTION_JWT && !jwt) throw invalidClient('client_assertion is not a JWT');
    if (id === undefined && jwt) id = jwt.payload.sub ?? jwt.payload.iss;
    record.client_auth.client_id = id ?? null;
    const c = typeof id === 'string' ? findClient(id) : undefined;
    if (!c) throw invalidClient('unknown client');
    if (typeof c.assertion === 'string') {
      if (c.assertion !== assertion) throw invalidClient('wrong client_assertion');
      return c.id;
    }
    if (!jwt) throw invalidClient('client has no configured SAML client_assertion');
    try {
      verifyOurs(jwt, 'client_assertion');
    } catch (e) {
      throw invalidClient(e.message);
    }
    return c.id;
  }

  record.client_auth = { method: bodyId !== undefined ? 'body' : 'none', client_id: bodyId ?? null };
  if (bodyId === undefined) throw invalidClient('no client authentication');
  const c = findClient(bodyId);
  if (!c) throw invalidClient('unknown client');
  if (typeof c.secret === 'string' && c.secret !== bodySecret) {
    throw invalidClient('wrong client secret');
  }
  return c.id;
}

// ---------------------------------------------------------------------------------------------
// Grants: each checks its parameters and says how the token is to be shaped.

function checkGrant(form, ctx, record) {
  const grant = one(form, 'grant_type');
  switch (grant) {
    case 'client_credentials':
      ctx.delegateGrant = 'client_credentials';
      return;

    case 'password': {
      const username = one(form, 'username');
      const password = one(form, 'password');
      if (!username || password === undefined) throw invalidRequest('username and password required');
      const u = config.users.find((x) => x.username === username);
      if (!u || u.password !== password) throw invalidGrant('wrong username or password');
      ctx.delegateGrant = 'password';
      ctx.refresh = true;
      ctx.idToken = true;
      ctx.claims = { sub: username, user_name: username, ...(u.claims ?? {}) };
      return;
    }

    case 'refresh_token': {
      const rt = one(form, 'refresh_token');
      if (!rt) throw invalidRequest('refresh_token required');
      if (Array.isArray(config.refresh_tokens)) {
        if (!config.refresh_tokens.includes(rt) && !issuedRefreshTokens.has(rt)) {
          throw invalidGrant('unknown refresh_token');
        }
      }
      ctx.delegateGrant = 'refresh_token';
      ctx.refresh = true;
      ctx.idToken = true;
      // The user of the grant that issued it, when it is one of ours.
      ctx.claims = { ...(issuedRefreshTokens.get(rt) ?? {}) };
      return;
    }

    case 'authorization_code': {
      const code = one(form, 'code');
      if (!code) throw invalidRequest('code required');
      const c = config.codes.find((x) => x.code === code);
      if (!c) throw invalidGrant('unknown code');
      if (c.single_use && usedCodes.has(code)) throw invalidGrant('code already used');
      if (typeof c.redirect_uri === 'string' && c.redirect_uri !== one(form, 'redirect_uri')) {
        throw invalidGrant('redirect_uri does not match');
      }
      if (typeof c.code_verifier === 'string') {
        const v = one(form, 'code_verifier');
        if (v === undefined) throw invalidGrant('code_verifier required');
        if (v !== c.code_verifier) throw invalidGrant('code_verifier does not match');
      }
      usedCodes.add(code);
      ctx.delegateGrant = 'authorization_code';
      ctx.refresh = true;
      ctx.idToken = true;
      ctx.claims = { ...(c.claims ?? {}) };
      if (ctx.claims.sub === undefined) ctx.claims.sub = c.sub ?? 'code-user';
      return;
    }

    case GRANT_JWT_BEARER: {
      const assertion = one(form, 'assertion');
      if (!assertion) throw invalidRequest('assertion required');
      const jwt = decodeJwt(assertion);
      if (!jwt) throw invalidGrant('assertion is not a JWT');
      if (isOurs(jwt)) verifyOurs(jwt, 'assertion');
      ctx.delegateGrant = 'client_credentials';
      ctx.refresh = true;
      ctx.claims = pickUserClaims(jwt.payload);
      record.assertion_claims = jwt.payload;
      return;
    }

    case GRANT_TOKEN_EXCHANGE: {
      const st = one(form, 'subject_token');
      const stt = one(form, 'subject_token_type');
      if (!st || !stt) throw invalidRequest('subject_token and subject_token_type required');
      const at = one(form, 'actor_token');
      const att = one(form, 'actor_token_type');
      if (at !== undefined && !att) throw invalidRequest('actor_token_type required with actor_token');
      if (at === undefined && att !== undefined) throw invalidRequest('actor_token_type without actor_token');
      ctx.claims = {};
      const subject = decodeJwt(st);
      if (subject) {
        if (isOurs(subject)) verifyOurs(subject, 'subject_token');
        ctx.claims = pickUserClaims(subject.payload);
      } else if (stt === TT_JWT || stt === 'urn:ietf:params:oauth:token-type:id_token') {
        throw invalidGrant('subject_token is not a JWT');
      }
      if (at !== undefined) {
        const actor = decodeJwt(at);
        if (actor) {
          if (isOurs(actor)) verifyOurs(actor, 'actor_token');
          ctx.claims.act = { sub: actor.payload.sub ?? actor.payload.client_id ?? null };
        } else {
          ctx.claims.act = { sub: null };
        }
      }
      const rtt = one(form, 'requested_token_type');
      ctx.issuedTokenType = rtt === TT_JWT ? TT_JWT : TT_ACCESS_TOKEN;
      ctx.delegateGrant = 'client_credentials';
      return;
    }

    case GRANT_SAML2_BEARER: {
      const assertion = one(form, 'assertion');
      if (!assertion) throw invalidRequest('assertion required');
      const xml = decodeBase64Loose(assertion);
      if (xml === null || !/<(?:[\w-]+:)?Assertion\b/.test(xml)) {
        throw invalidGrant('assertion is not a base64 SAML 2.0 Assertion');
      }
      record.saml_assertion_xml = xml;
      const m = /<(?:[\w-]+:)?NameID\b[^>]*>([^<]*)<\/(?:[\w-]+:)?NameID>/.exec(xml);
      ctx.claims = {};
      if (m) {
        const nameId = xmlUnescape(m[1].trim());
        ctx.claims.sub = nameId;
        ctx.claims.user_name = nameId;
        record.saml_name_id = nameId;
      }
      ctx.delegateGrant = 'client_credentials';
      ctx.refresh = true;
      return;
    }

    case undefined:
    case '':
      throw invalidRequest('grant_type required');
    default:
      throw new OAuthError(400, 'unsupported_grant_type', `unsupported grant_type ${grant}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The token endpoint (any path ending in /token)

const TOKEN_PATH = /(^|\/)token$/;

async function handleToken(req, res, url) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const record = {
    method: req.method,
    path: url.pathname,
    query: paramsToObject(url.searchParams),
    raw_query: url.search.startsWith('?') ? url.search.slice(1) : url.search,
    headers,
    form: {},
    raw_body: '',
    timestamp: Date.now(),
    timestamp_iso: new Date().toISOString(),
    client_auth: null,
    status: null,
  };
  requests.push(record);
  const respond = (status, body, extra) => {
    record.status = status;
    if (!res.headersSent && !res.destroyed) sendJson(res, status, body, extra);
  };

  try {
    const raw = await readBody(req);
    record.raw_body = raw;
    const ct = String(req.headers['content-type'] ?? '').toLowerCase();
    const form = ct.startsWith('application/x-www-form-urlencoded')
      ? paramsToObject(new URLSearchParams(raw))
      : {};
    record.form = form;

    if (config.delay_ms > 0) await new Promise((r) => setTimeout(r, config.delay_ms));

    if (config.fail && config.fail.count > 0) {
      config.fail.count -= 1;
      record.status = config.fail.status;
      record.injected_failure = true;
      res.writeHead(config.fail.status, { 'content-type': config.fail.content_type });
      res.end(config.fail.body);
      return;
    }

    if (req.method !== 'POST') {
      return respond(405, { error: 'invalid_request', error_description: 'use POST' }, { allow: 'POST' });
    }
    if (!ct.startsWith('application/x-www-form-urlencoded')) {
      throw invalidRequest('content-type must be application/x-www-form-urlencoded');
    }

    const clientId = authenticateClient(req, form, record);
    const ctx = {
      clientId,
      grantType: one(form, 'grant_type'),
      scope: one(form, 'scope'),
      lifetime: config.token_lifetime,
      refresh: false,
      idToken: false,
      issuedTokenType: undefined,
      claims: {},
      signed: 0,
      delegateGrant: undefined,
    };
    checkGrant(form, ctx, record);

    // Delegate to oauth2-mock-server's own token handler with a clean, single-valued body.
    const body = { grant_type: ctx.delegateGrant };
    if (ctx.scope !== undefined) body.scope = ctx.scope;
    const aud = form.aud;
    if (aud !== undefined) body.aud = aud;
    if (ctx.delegateGrant === 'password') body.username = one(form, 'username');
    if (ctx.delegateGrant === 'authorization_code') body.code = one(form, 'code');
    body.client_id = clientId;
    req.signpost = ctx;
    req.body = body;
    req._body = true; // body-parser: already parsed
    req.url = '/token';
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    mockHandler(req, res);
  } catch (e) {
    if (e instanceof OAuthError) {
      const body = { error: e.error };
      if (e.description) body.error_description = e.description;
      const extra = e.status === 401 ? { 'www-authenticate': 'Basic realm="oauth-server"' } : {};
      return respond(e.status, body, extra);
    }
    process.stderr.write(`oauth-server: token request failed: ${e?.stack ?? e}\n`);
    return respond(500, { error: 'server_error' });
  }
}

// ---------------------------------------------------------------------------------------------
// Control endpoints

async function handleControl(req, res, url) {
  const path = url.pathname;
  if (path === '/__config' && req.method === 'POST') {
    const patch = JSON.parse((await readBody(req)) || '{}');
    applyConfig(patch);
    return sendJson(res, 200, config);
  }
  if (path === '/__config' && req.method === 'GET') return sendJson(res, 200, config);
  if (path === '/__requests' && req.method === 'GET') return sendJson(res, 200, requests);
  if (path === '/__requests' && req.method === 'DELETE') {
    requests = [];
    res.writeHead(204);
    return res.end();
  }
  if (path === '/__user_token' && req.method === 'POST') {
    const claims = JSON.parse((await readBody(req)) || '{}');
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
      return sendJson(res, 400, { error: 'claims must be a JSON object' });
    }
    const token = await issuer.buildToken({
      kid: signingKid,
      expiresIn: 3600,
      scopesOrTransform: (_header, payload) => {
        delete payload.nbf;
        Object.assign(payload, claims);
      },
    });
    return sendJson(res, 200, { token });
  }
  return sendJson(res, 404, { error: 'not_found' });
}

// ---------------------------------------------------------------------------------------------
// The HTTP layer

async function handle(req, res) {
  const url = new URL(req.url ?? '/', issuer.url);
  try {
    if (url.pathname.startsWith('/__')) return await handleControl(req, res, url);
    if (TOKEN_PATH.test(url.pathname)) return await handleToken(req, res, url);
    if (url.pathname === '/token_keys') req.url = '/jwks'; // XSUAA's name for the JWKS
    return mockHandler(req, res);
  } catch (e) {
    process.stderr.write(`oauth-server: ${req.method} ${url.pathname} failed: ${e?.message ?? e}\n`);
    if (!res.headersSent) sendJson(res, 400, { error: 'bad_request', message: String(e?.message ?? e) });
    else res.end();
  }
}

const args = parseArgs(process.argv.slice(2));
const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    process.stderr.write(`oauth-server: ${e?.stack ?? e}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
  });
});
server.keepAliveTimeout = 5000;
server.on('error', (e) => fail(`server error: ${e.message}`));
server.listen(args.port, HOST, () => {
  const { port } = server.address();
  issuer.url = `http://${HOST}:${port}`;
  process.stdout.write(`${JSON.stringify({ url: issuer.url })}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args.watchStdin) {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
