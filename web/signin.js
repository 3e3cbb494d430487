// The sign-in view: a service key (pasted, picked or dropped) or the broker credentials with a
// choice of instance. Nothing typed here is stored by the page.

import { h, replace, field, dropZone } from './dom.js';
import { parseServiceKey, signInWithKey, brokerInstances, signInWithBroker } from './api.js';

export function signInView(main, reason) {
  const keyText = h('textarea', { spellcheck: 'false', autocomplete: 'off', placeholder: '{"clientid": "...", "clientsecret": "...", "url": "..."}' });
  const keyError = h('div', { class: 'form-error', role: 'alert' });
  const keyButton = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const { zone } = dropZone('Drop the service key file here, or', '.json,application/json', async (f) => {
    keyText.value = await f.text();
    keyText.focus();
  });
  const keyForm = h('form', { class: 'card', 'aria-labelledby': 'key-title' },
    h('h2', { id: 'key-title' }, 'With a service key'),
    h('p', { class: 'hint' }, 'The JSON that signpost serve wrote on its first start, or that signpost key create printed.'),
    field('Service key (JSON)', keyText).wrap, zone, keyError, h('p', {}, keyButton));
  keyForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    keyError.textContent = '';
    keyButton.disabled = true;
    try {
      const key = parseServiceKey(keyText.value);
      await signInWithKey(key);
      keyText.value = '';
    } catch (err) {
      keyError.textContent = err.message;
      keyText.focus();
    } finally { keyButton.disabled = false; }
  });

  const user = h('input', { type: 'text', autocomplete: 'username', spellcheck: 'false' });
  const password = h('input', { type: 'password', autocomplete: 'current-password' });
  const brokerError = h('div', { class: 'form-error', role: 'alert' });
  const list = h('div', { 'aria-live': 'polite' });
  const brokerButton = h('button', { type: 'submit' }, 'List instances');
  const brokerForm = h('form', { class: 'card', 'aria-labelledby': 'broker-title' },
    h('h2', { id: 'broker-title' }, 'With the broker credentials'),
    h('p', { class: 'hint' }, 'The platform’s user and password (SIGNPOST_BROKER_USER and SIGNPOST_BROKER_PASSWORD, or broker-credentials.json in the data directory); then choose an instance.'),
    field('User', user).wrap, field('Password', password).wrap, brokerError, h('p', {}, brokerButton), list);
  brokerForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    brokerError.textContent = '';
    brokerButton.disabled = true;
    try {
      const instances = await brokerInstances(user.value, password.value);
      if (instances.length === 0) { replace(list, h('p', {}, 'There is no service instance yet.')); return; }
      replace(list, h('ul', { class: 'checklist' }, instances.map((i) => h('li', {},
        h('button', {
          type: 'button',
          disabled: i.bindings === 0,
          onclick: async () => {
            try { await signInWithBroker(user.value, password.value, i); } catch (err) { brokerError.textContent = err.message; }
          },
        }, `Open instance ${i.instanceId}`),
        h('div', { class: 'detail' }, `subaccount ${i.subdomain || i.subaccountId}, ${i.bindings} service key(s)${i.bindings === 0 ? ': create one first' : ''}`)))));
      list.querySelector('button:not([disabled])')?.focus();
    } catch (err) {
      brokerError.textContent = err.message;
    } finally { brokerButton.disabled = false; }
  });

  replace(main, h('h1', {}, 'Sign in to the Destinations editor'),
    reason ? h('p', { class: 'bad', role: 'alert' }, reason) : null,
    h('div', { class: 'signin' }, keyForm, brokerForm));
  keyText.focus();
}
