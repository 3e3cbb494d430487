// The editor's one way to the server: the session (a token in memory only, never in local or
// session storage, renewed before it expires) and JSON requests with the API's errors.

/** An answer of the API that is not a success: status, the API's sentence, the ETag if any. */
export class ApiError extends Error {
  constructor(status, message, etag, body) {
    super(message);
    this.status = status;
    this.etag = etag;
    this.body = body;
  }
}

const session = {
  token: null,
  label: '',
  renew: null, // async () => token answer
  timer: null,
  listeners: new Set(),
};

export function signedIn() { return session.token !== null; }
export function sessionLabel() { return session.label; }
/** Called with `true`/`false` when the session starts or ends. */
export function onSession(fn) { session.listeners.add(fn); }

/** Takes a token answer; a session that starts here is announced to the listeners. */
function adopt(answer, label, renew) {
  if (!answer || typeof answer.access_token !== 'string') {
    throw new ApiError(0, 'The token service answered without an access token');
  }
  const starts = session.token === null;
  session.token = answer.access_token;
  session.label = label;
  session.renew = renew;
  clearTimeout(session.timer);
  // Renew at four fifths of the token's life (at least 5 s from now).
  const life = Number(answer.expires_in) || 3600;
  session.timer = setTimeout(renewNow, Math.max(5, life * 0.8) * 1000);
  if (starts) for (const fn of session.listeners) fn(true);
}

async function renewNow() {
  if (!session.renew) return;
  try {
    const answer = await session.renew();
    adopt(answer, session.label, session.renew);
  } catch (e) {
    signOut(`The session could not be renewed: ${e.message}`);
  }
}

/** Ends the session: the token and every credential kept for renewal are dropped. */
export function signOut(reason) {
  clearTimeout(session.timer);
  const was = session.token !== null;
  session.token = null;
  session.renew = null;
  session.label = '';
  if (was) for (const fn of session.listeners) fn(false, reason);
}

async function tokenRequest(form) {
  const res = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
    credentials: 'omit',
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const why = body.error_description || body.error || `status ${res.status}`;
    throw new ApiError(res.status, res.status === 401
      ? 'The service key was not accepted: its client id or secret is wrong, or the key was deleted'
      : `The token service refused: ${why}`);
  }
  return body;
}

/**
 * Parses a service key (the JSON of `signpost key create`, or the `credentials` of a binding)
 * and checks that a browser can use it.
 */
export function parseServiceKey(text) {
  let key;
  try { key = JSON.parse(text); } catch { throw new ApiError(0, 'This is not JSON: paste the whole service key'); }
  if (key && typeof key === 'object' && key.credentials && typeof key.credentials === 'object') key = key.credentials;
  if (!key || typeof key !== 'object' || typeof key.clientid !== 'string') {
    throw new ApiError(0, 'This JSON is not a service key: it has no clientid');
  }
  if (key['credential-type'] === 'x509' || (!key.clientsecret && key.certificate)) {
    throw new ApiError(0, 'An X.509 service key signs in with a client certificate, which a web page cannot present; use a client-secret key or the broker credentials');
  }
  if (typeof key.clientsecret !== 'string' || key.clientsecret === '') {
    throw new ApiError(0, 'This service key has no clientsecret');
  }
  return key;
}

/** Signs in with a service key (client id and secret): the token comes from this server. */
export async function signInWithKey(key) {
  const form = { grant_type: 'client_credentials', client_id: key.clientid, client_secret: key.clientsecret };
  const renew = () => tokenRequest(form);
  const answer = await renew();
  adopt(answer, `service key of instance ${key.instanceid || key.identityzone || ''}`.trim(), renew);
}

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** The instances the broker credentials reach: [{instanceId, subaccountId, subdomain, bindings}]. */
export async function brokerInstances(user, password) {
  const res = await fetch('/signpost/v1/instances', {
    headers: { Authorization: basic(user, password), Accept: 'application/json' },
    credentials: 'omit',
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.ErrorMessage || `status ${res.status}`);
  return body;
}

/** Signs in to one instance with the broker credentials. */
export async function signInWithBroker(user, password, instance) {
  const authorization = basic(user, password);
  const renew = async () => {
    const res = await fetch(`/signpost/v1/instances/${encodeURIComponent(instance.instanceId)}/token`, {
      method: 'POST', headers: { Authorization: authorization, Accept: 'application/json' }, credentials: 'omit',
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new ApiError(res.status, body.ErrorMessage || `status ${res.status}`);
    return body;
  };
  const answer = await renew();
  adopt(answer, `instance ${instance.instanceId} of subaccount ${instance.subdomain || instance.subaccountId}`, renew);
}

/**
 * A request of the API with the session's token. `body` is sent as JSON. Resolves to
 * {status, etag, body, headers}; rejects with ApiError for any status of 400 and above.
 */
export async function request(method, path, { body, headers = {}, retry = true } = {}) {
  if (!session.token) throw new ApiError(401, 'Not signed in');
  const init = {
    method,
    headers: { Accept: 'application/json', Authorization: `Bearer ${session.token}`, ...headers },
    credentials: 'omit',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let parsed = null;
  if (text) { try { parsed = JSON.parse(text); } catch { parsed = text; } }
  const etag = res.headers.get('ETag');
  if (res.status === 401 && retry && session.renew) {
    // The token may have been revoked or expired while the tab slept: renew once, then retry.
    await renewNow();
    if (session.token) return request(method, path, { body, headers, retry: false });
  }
  if (res.status >= 400) {
    const message = (parsed && parsed.ErrorMessage) || (typeof parsed === 'string' && parsed) || `The server answered ${res.status}`;
    throw new ApiError(res.status, message, etag, parsed);
  }
  return { status: res.status, etag, body: parsed, headers: res.headers };
}

/** The configuration API's collection path of a kind on a level. */
export function collection(level, kind) {
  const names = { destination: 'Destinations', fragment: 'DestinationFragments', certificate: 'Certificates' };
  return `/destination-configuration/v1/${level}${names[kind]}`;
}
