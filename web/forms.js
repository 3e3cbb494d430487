// The create/edit form of a destination or fragment: the fields of the chosen Type and
// Authentication (API.md §3.2), additional properties as key/value rows, secrets masked.
// A stored secret is never put into the page: its field stays empty and, left empty, the
// stored value is kept (the API replaces whole entities, so the editor sends the value it read).

import { h, field, select, uid, replace } from './dom.js';

export const TYPES = ['HTTP', 'RFC', 'MAIL', 'LDAP', 'TCP'];
export const PROXY_TYPES = ['Internet', 'OnPremise', 'PrivateLink'];

const OAUTH_OPTIONAL = ['clientSecret', 'tokenServiceURLType', 'scope'];
/** Authentication types: the fields each requires and offers. */
export const AUTHENTICATIONS = {
  NoAuthentication: { required: [], optional: [] },
  BasicAuthentication: { required: ['User', 'Password'], optional: ['Preemptive'] },
  ClientCertificateAuthentication: { required: ['KeyStoreLocation', 'KeyStorePassword'], optional: ['KeyStore.Source'] },
  PrincipalPropagation: { required: [], optional: [], proxy: 'OnPremise' },
  OAuth2ClientCredentials: { required: ['clientId', 'tokenServiceURL'], optional: [...OAUTH_OPTIONAL, 'tokenServiceUser', 'tokenServicePassword'] },
  OAuth2Password: { required: ['clientId', 'User', 'Password', 'tokenServiceURL'], optional: ['clientSecret', 'scope'] },
  OAuth2UserTokenExchange: { required: ['clientId', 'tokenServiceURL'], optional: OAUTH_OPTIONAL },
  OAuth2JWTBearer: { required: ['clientId', 'tokenServiceURL'], optional: OAUTH_OPTIONAL },
  OAuth2SAMLBearerAssertion: {
    required: ['audience', 'clientKey', 'tokenServiceURL', 'authnContextClassRef'],
    optional: ['tokenServiceUser', 'tokenServicePassword', 'nameIdFormat', 'userIdSource', 'assertionIssuer', 'assertionRecipient', 'tokenServiceURLType'],
  },
  SAMLAssertion: { required: ['audience', 'authnContextClassRef'], optional: ['clientKey', 'nameIdFormat', 'userIdSource', 'assertionIssuer', 'assertionRecipient'] },
  OAuth2RefreshToken: { required: ['clientId', 'tokenServiceURL'], optional: OAUTH_OPTIONAL },
  OAuth2AuthorizationCode: { required: ['clientId', 'tokenServiceURL'], optional: OAUTH_OPTIONAL },
  OAuth2TechnicalUserPropagation: { required: ['clientId', 'tokenServiceURL'], optional: [...OAUTH_OPTIONAL, 'tokenServiceUser', 'tokenServicePassword'], proxy: 'OnPremise' },
  OAuth2TokenExchange: { required: ['clientId', 'tokenServiceURL'], optional: ['clientSecret', 'scope'] },
};

/** What each Type shows besides Name, Type and Description. */
const TYPE_FIELDS = {
  HTTP: { required: ['URL'], optional: ['ProxyType', 'TrustStoreLocation', 'TrustAll'], auth: Object.keys(AUTHENTICATIONS) },
  RFC: { required: [], optional: ['ProxyType', 'User', 'Password', 'jco.client.ashost', 'jco.client.sysnr', 'jco.client.client', 'jco.client.lang'], auth: null },
  MAIL: { required: [], optional: ['ProxyType', 'mail.smtp.host', 'mail.smtp.port', 'mail.transport.protocol', 'mail.user', 'mail.password'], auth: ['NoAuthentication', 'BasicAuthentication', 'OAuth2ClientCredentials'] },
  LDAP: { required: ['URL'], optional: ['ProxyType', 'User', 'Password'], auth: ['NoAuthentication', 'BasicAuthentication'] },
  TCP: { required: ['URL'], optional: ['ProxyType'], auth: ['NoAuthentication'] },
};

const HINTS = {
  URL: 'For HTTP: https://host/path. For TCP: host:port.',
  ProxyType: 'Internet, OnPremise (through a Cloud Connector) or PrivateLink',
  TrustStoreLocation: 'The name of an uploaded certificate that the server certificate must chain to',
  TrustAll: 'TRUE skips the server certificate check (never in production)',
  KeyStoreLocation: 'The name of an uploaded or generated certificate with its key',
  tokenServiceURLType: 'Dedicated (used as is) or Common (the tenant\'s subdomain is put in)',
  Preemptive: 'TRUE (default) sends the credentials with the first request',
};

/** Properties whose values are secrets. */
export function isSecret(key) { return /(password|secret|passwd)$/i.test(key); }

const KEEP = Symbol('keep the stored secret');

/**
 * Renders the form of `entity` (null for a new one) into `container`.
 * kind: 'destination' | 'fragment'; mode: 'create' | 'edit' | 'clone'.
 * Returns {collect(), showError(message) -> bool (shown at a field), focusFirst()}.
 */
export function entityForm(container, kind, entity, mode) {
  const nameKey = kind === 'fragment' ? 'FragmentName' : 'Name';
  const values = {};
  const secrets = {};
  for (const [k, v] of Object.entries(entity || {})) {
    if (typeof v !== 'string') continue;
    if (isSecret(k) && v !== '') { secrets[k] = v; values[k] = KEEP; } else values[k] = v;
  }
  if (mode === 'clone') values[nameKey] = `${values[nameKey] || ''}-copy`;
  if (kind === 'destination') {
    values.Type = values.Type || 'HTTP';
    if (values.Type === 'HTTP' && !values.Authentication) values.Authentication = 'NoAuthentication';
    if (values.Type === 'HTTP' && !values.ProxyType) values.ProxyType = 'Internet';
  }
  const inputs = new Map(); // key -> {input, error}
  const formError = h('div', { class: 'form-error', role: 'alert' });

  function known() {
    if (kind === 'fragment') return { required: [], optional: [] };
    const t = TYPE_FIELDS[values.Type] || TYPE_FIELDS.HTTP;
    const a = t.auth && AUTHENTICATIONS[values.Authentication];
    const required = [...t.required, ...(a ? a.required : [])];
    const optional = [...t.optional, ...(a ? a.optional : [])].filter((k) => !required.includes(k));
    return { required, optional };
  }

  function control(key, required) {
    const secret = isSecret(key);
    const kept = values[key] === KEEP;
    let input;
    if (key === 'ProxyType') {
      input = select(PROXY_TYPES, values[key] || 'Internet');
    } else if (key === 'TrustAll' || key === 'Preemptive') {
      input = select([['', '(not set)'], 'TRUE', 'FALSE'], values[key] || '');
    } else if (key === 'tokenServiceURLType') {
      input = select([['', '(not set: Dedicated)'], 'Dedicated', 'Common'], values[key] || '');
    } else {
      input = h('input', {
        type: secret ? 'password' : 'text',
        value: secret ? '' : (values[key] || ''),
        autocomplete: secret ? 'new-password' : 'off',
        spellcheck: 'false',
        placeholder: kept ? '•••••• stored; type to replace' : '',
        required: required && !kept,
      });
    }
    input.dataset.key = key;
    input.addEventListener('input', () => {
      if (secret && input.value === '' && secrets[key] !== undefined) values[key] = KEEP;
      else values[key] = input.value;
      clearError(key);
    });
    const f = field(required ? `${key} (required)` : key, input, HINTS[key]);
    inputs.set(key, f);
    return f.wrap;
  }

  function clearError(key) {
    const f = inputs.get(key);
    if (f) { f.error.textContent = ''; f.input.removeAttribute('aria-invalid'); }
    formError.textContent = '';
  }

  const rowsBox = h('div', { id: uid('rows') });

  function extraRow(key, value) {
    const secret = isSecret(key);
    const kept = value === KEEP;
    const k = h('input', { type: 'text', value: key, 'aria-label': 'Property name', placeholder: 'name', spellcheck: 'false' });
    const v = h('input', {
      type: secret ? 'password' : 'text', value: kept ? '' : value, 'aria-label': `Value of ${key || 'the new property'}`,
      placeholder: kept ? '•••••• stored; type to replace' : 'value', spellcheck: 'false', autocomplete: 'off',
    });
    let current = key;
    const sync = () => {
      const nk = k.value.trim();
      if (current && current !== nk) delete values[current];
      current = nk;
      if (!nk) return;
      if (v.value === '' && secrets[nk] !== undefined && isSecret(nk)) values[nk] = KEEP;
      else values[nk] = v.value;
      v.type = isSecret(nk) ? 'password' : 'text';
      v.setAttribute('aria-label', `Value of ${nk}`);
    };
    k.addEventListener('change', sync);
    v.addEventListener('input', sync);
    const row = h('div', { class: 'kv', dataset: { row: key } }, k, v,
      h('button', { type: 'button', 'aria-label': `Remove ${key || 'this property'}`, onclick: () => { if (current) delete values[current]; row.remove(); } }, 'Remove'));
    if (key) inputs.set(key, { input: v, error: formError });
    return row;
  }

  function render() {
    inputs.clear();
    const { required, optional } = known();
    const shown = new Set([nameKey, 'Type', 'Description', 'Authentication', ...required, ...optional]);
    const name = h('input', { type: 'text', value: values[nameKey] || '', required: true, spellcheck: 'false',
      readonly: mode === 'edit', pattern: '[A-Za-z0-9_\\-]{1,200}', autocomplete: 'off' });
    name.dataset.key = nameKey;
    name.addEventListener('input', () => { values[nameKey] = name.value; clearError(nameKey); });
    const nameField = field(`${nameKey} (required)`, name, mode === 'edit' ? 'The name cannot be changed; clone to copy under another name' : 'Letters, digits, _ and -, at most 200');
    inputs.set(nameKey, nameField);
    const parts = [nameField.wrap];
    if (kind === 'destination') {
      const type = select(TYPES, values.Type);
      type.dataset.key = 'Type';
      type.addEventListener('change', () => {
        values.Type = type.value;
        const auths = TYPE_FIELDS[values.Type].auth;
        if (auths && !auths.includes(values.Authentication)) values.Authentication = auths[0];
        if (!auths) delete values.Authentication;
        render();
        container.querySelector('[data-key="Type"]').focus();
      });
      const typeField = field('Type', type);
      inputs.set('Type', typeField);
      const desc = h('input', { type: 'text', value: values.Description || '' });
      desc.dataset.key = 'Description';
      desc.addEventListener('input', () => { values.Description = desc.value; clearError('Description'); });
      const descField = field('Description', desc);
      inputs.set('Description', descField);
      parts.push(h('div', { class: 'grid2' }, typeField.wrap, descField.wrap));
      const auths = TYPE_FIELDS[values.Type].auth;
      if (auths) {
        const auth = select(auths, values.Authentication);
        auth.dataset.key = 'Authentication';
        auth.addEventListener('change', () => {
          values.Authentication = auth.value;
          const need = AUTHENTICATIONS[auth.value] && AUTHENTICATIONS[auth.value].proxy;
          if (need) values.ProxyType = need;
          render();
          container.querySelector('[data-key="Authentication"]').focus();
        });
        const authField = field('Authentication', auth,
          AUTHENTICATIONS[values.Authentication] && AUTHENTICATIONS[values.Authentication].proxy
            ? `Needs ProxyType ${AUTHENTICATIONS[values.Authentication].proxy}` : null);
        inputs.set('Authentication', authField);
        parts.push(authField.wrap);
      }
      const fields = [...required.map((k) => control(k, true)), ...optional.map((k) => control(k, false))];
      parts.push(h('fieldset', {}, h('legend', {}, `${values.Type}${values.Authentication ? ` · ${values.Authentication}` : ''}`),
        h('div', { class: 'grid2' }, fields)));
    }
    const extra = Object.keys(values).filter((k) => !shown.has(k));
    replace(rowsBox, extra.map((k) => extraRow(k, values[k])));
    const add = h('button', { type: 'button', onclick: () => { const r = extraRow('', ''); rowsBox.append(r); r.querySelector('input').focus(); } }, 'Add property');
    parts.push(h('fieldset', {}, h('legend', {}, kind === 'fragment' ? 'Properties' : 'Additional properties'),
      kind === 'destination' && values.Type === 'MAIL' ? h('p', { class: 'hint' }, 'Additional properties of MAIL destinations start with mail.') : null,
      rowsBox, add));
    parts.push(formError);
    replace(container, parts);
  }

  render();

  return {
    /** The entity to send: every non-empty value, stored secrets kept where left empty. */
    collect() {
      const out = {};
      for (const [k, v] of Object.entries(values)) {
        if (!k) continue;
        if (v === KEEP) out[k] = secrets[k];
        else if (v !== '' && v !== undefined) out[k] = v;
      }
      return out;
    },
    /** Shows an API error beside the field it names; false when it names none. */
    showError(message) {
      formError.textContent = '';
      const keys = [...inputs.keys()].sort((a, b) => b.length - a.length);
      // "Invalid destination 'x': URL must ..." names the field after the colon.
      const tail = message.includes(': ') ? message.slice(message.indexOf(': ') + 2) : message;
      const key = keys.find((k) => tail.startsWith(`${k} `) || tail.includes(`'${k}'`) || tail.includes(`"${k}"`))
        || keys.find((k) => message.includes(` ${k} `));
      const f = key && inputs.get(key);
      if (f && f.error !== formError) {
        f.error.textContent = message;
        f.input.setAttribute('aria-invalid', 'true');
        f.input.focus();
        return true;
      }
      formError.textContent = message;
      return false;
    },
    focusFirst() {
      const first = container.querySelector('input:not([readonly]), select');
      if (first) first.focus();
    },
  };
}
