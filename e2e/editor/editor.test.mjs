// End-to-end test of the Destinations editor: playwright-core drives Debian's chromium (headless)
// against a real `signpost serve` on loopback. crates/signpost/tests/editor.rs starts the server,
// makes the certificates and files, runs this script and then reads the server's log.
//
// Environment (all set by editor.rs):
//   EDITOR_URL          the editor, http://127.0.0.1:<port>/
//   SERVICE_KEY_FILE    the first run's default-service-key.json (picked in the sign-in form)
//   BROKER_USER/_PASSWORD  the broker credentials (the second sign-in)
//   HTTPS_URL           a URL of the server's own HTTPS listener (its certificate from CHAIN_PEM's CA)
//   CLOSED_URL          an http URL of a closed loopback port
//   CHAIN_PEM           the HTTPS listener's certificate and its CA (a PEM chain), named chain.pem
//   P12_FILE, P12_PASSWORD  a PKCS#12 keystore and its password
//   IMPORT_FILE         a destination exported from SAP's cockpit (properties)
//   OUT_DIR             where the screenshots go
//   CHROMIUM            the browser (default /usr/bin/chromium)
// Exit code 0 when every step passed; the failing step and its reason on stderr otherwise.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const EDITOR = env('EDITOR_URL');
const OUT = env('OUT_DIR');
const KEY = JSON.parse(fs.readFileSync(env('SERVICE_KEY_FILE'), 'utf8'));
fs.mkdirSync(OUT, { recursive: true });

// ---- the API beside the browser: what "another client" does, and what is stored ----
async function apiToken() {
  const res = await fetch(new URL('/oauth/token', EDITOR), {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: KEY.clientid, client_secret: KEY.clientsecret }),
  });
  assert.equal(res.status, 200, 'token for the test client');
  return (await res.json()).access_token;
}
const TOKEN = await apiToken();
async function api(method, p, body) {
  const res = await fetch(new URL(p, EDITOR), {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
const DESTS = '/destination-configuration/v1/subaccountDestinations';

// ---- the browser ----
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
const page = await context.newPage();
page.setDefaultTimeout(10000);
// A controllable clock, so that the token's renewal can be brought forward.
await page.clock.install();

// Console errors fail the test, except the browser's own line for an API answer of a status
// that the current step expects ("Failed to load resource: ... status of 412").
const problems = [];
let expected = new Set();
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const status = /status of (\d{3})/.exec(m.text());
  if (status && expected.has(Number(status[1]))) return;
  problems.push(`console error on ${page.url()}: ${m.text()}`);
});
page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));

let stepName = '';
async function step(name, fn, statuses = []) {
  stepName = name;
  expected = new Set(statuses);
  const started = Date.now();
  // A list that is reloading (after the last step's save) replaces its rows: a click on a row's
  // button in between is lost (found under CI's load: "clone it" clicked while "edit it"'s reload
  // redrew the table).
  await page.locator('[aria-busy="true"]').waitFor({ state: 'detached' });
  await fn();
  expected = new Set();
  assert.deepEqual(problems, [], `console or page errors during "${name}"`);
  console.log(`ok  ${name} (${Date.now() - started} ms)`);
}
/** A screenshot of the view without the passing messages of earlier steps. */
async function shot(name) {
  await page.evaluate(() => document.getElementById('toasts').replaceChildren());
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
}
const dialog = () => page.locator('dialog[open]');
const row = (name) => page.locator(`tbody tr[data-name="${name}"]`);
/** The error shown beside the control with data-key `key` in the open dialog. */
async function fieldError(key) {
  const id = await dialog().locator(`[data-key="${key}"]`).getAttribute('id');
  return page.locator(`[id="${id}-error"]`);
}
async function fill(key, value) { await dialog().locator(`[data-key="${key}"]`).fill(value); }
async function choose(key, value) { await dialog().locator(`[data-key="${key}"]`).selectOption(value); }
async function save(label) { await dialog().getByRole('button', { name: label, exact: true }).click(); }
async function confirmDelete() { await dialog().locator('.foot button.danger').click(); }

/** Every visible control has an accessible name; returns the ones without. */
async function unlabelled() {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => {
      if (el.type === 'file') return !el.getAttribute('aria-label');
      if (el.closest('[hidden]') || el.getClientRects().length === 0) return false;
      const named = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')
        || (el.tagName === 'BUTTON' && el.textContent.trim());
      return !named;
    })
    .map((el) => el.outerHTML.slice(0, 120)));
}
async function checkView(name) {
  assert.deepEqual(await unlabelled(), [], `controls without a label on ${name}`);
}

try {
  await step('the sign-in view, a bad key refused with its reason', async () => {
    await page.goto(EDITOR);
    await page.getByRole('heading', { name: 'Sign in to the Destinations editor' }).waitFor();
    await checkView('sign-in');
    await shot('sign-in');
    await page.getByLabel('Service key (JSON)').fill('{"clientid": ');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('This is not JSON').waitFor();
    await page.getByLabel('Service key (JSON)').fill(JSON.stringify({ ...KEY, clientsecret: 'wrong' }));
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByText('The service key was not accepted').waitFor();
  }, [401]);

  await step('sign in by picking the service key file; the token is kept in memory only', async () => {
    await page.locator('form[aria-labelledby="key-title"] input[type=file]').setInputFiles(env('SERVICE_KEY_FILE'));
    await assert.doesNotReject(async () => {
      const text = await page.getByLabel('Service key (JSON)').inputValue();
      assert.equal(JSON.parse(text).clientid, KEY.clientid);
    });
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Destinations · subaccount level' }).waitFor();
    const stored = await page.evaluate(() => ({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }));
    assert.deepEqual(stored, { local: 0, session: 0, cookie: '' });
    assert.ok(!(await page.content()).includes(KEY.clientsecret), 'the secret is not left in the page');
  });

  await step('an API error is shown beside its field, nothing stored', async () => {
    await page.getByRole('button', { name: 'New destination' }).click();
    await fill('Name', 'bad name!');
    await fill('URL', 'https://orders.example.com/api');
    await save('Create');
    const err = await fieldError('Name');
    await err.waitFor();
    assert.match(await err.textContent(), /Name/);
    assert.equal(await dialog().locator('[data-key="Name"]').getAttribute('aria-invalid'), 'true');
    assert.equal((await api('GET', DESTS)).body.length, 0);
    await dialog().getByRole('button', { name: 'Cancel' }).click();
  }, [400, 422]);

  await step('create a destination', async () => {
    await page.getByRole('button', { name: 'New destination' }).click();
    await fill('Name', 'orders');
    await fill('URL', 'https://orders.example.com/api');
    await fill('Description', 'Order service');
    await save('Create');
    await row('orders').waitFor();
    const stored = await api('GET', `${DESTS}/orders`);
    assert.equal(stored.status, 200);
    assert.equal(stored.body.URL, 'https://orders.example.com/api');
    assert.equal(stored.body.Authentication, 'NoAuthentication');
  });

  await step('edit it: the form shows the fields of the chosen authentication; the secret stays out of the page', async () => {
    await row('orders').getByRole('button', { name: 'Edit orders' }).click();
    await choose('Authentication', 'BasicAuthentication');
    await dialog().locator('[data-key="User"]').waitFor();
    await dialog().locator('[data-key="Password"]').waitFor();
    await fill('User', 'alice');
    await fill('Password', 'editor-basic-secret');
    await shot('edit-destination');
    await save('Save');
    await row('orders').getByText('BasicAuthentication').waitFor();
    assert.equal((await api('GET', `${DESTS}/orders`)).body.Password, 'editor-basic-secret');
    // Opened again: the password field is empty, masked, and saving without touching it keeps it.
    await row('orders').getByRole('button', { name: 'Edit orders' }).click();
    const pw = dialog().locator('[data-key="Password"]');
    assert.equal(await pw.getAttribute('type'), 'password');
    assert.equal(await pw.inputValue(), '');
    assert.ok(!(await page.content()).includes('editor-basic-secret'), 'the stored secret is not in the page');
    await fill('Description', 'Order service, edited');
    await save('Save');
    await dialog().waitFor({ state: 'detached' });
    const after = (await api('GET', `${DESTS}/orders`)).body;
    assert.equal(after.Description, 'Order service, edited');
    assert.equal(after.Password, 'editor-basic-secret', 'the stored secret was kept');
  });

  await step('clone it', async () => {
    await row('orders').getByRole('button', { name: 'Clone orders' }).click();
    assert.equal(await dialog().locator('[data-key="Name"]').inputValue(), 'orders-copy');
    await save('Create');
    await row('orders-copy').waitFor();
    const copy = (await api('GET', `${DESTS}/orders-copy`)).body;
    assert.equal(copy.User, 'alice');
    assert.equal(copy.Password, 'editor-basic-secret', 'a clone carries the stored secret');
  });

  await step('a change by another client meanwhile is a 412, and the editor reloads', async () => {
    await row('orders').getByRole('button', { name: 'Edit orders' }).click();
    await dialog().locator('[data-key="Description"]').waitFor();
    const other = await api('GET', `${DESTS}/orders`);
    const res = await api('PUT', DESTS, { ...other.body, Description: 'changed by another client' });
    assert.equal(res.status, 200);
    await fill('Description', 'my edit');
    await save('Save');
    await dialog().getByText('Someone changed this destination since you opened it').waitFor();
    await shot('conflict');
    assert.equal((await api('GET', `${DESTS}/orders`)).body.Description, 'changed by another client', 'nothing overwritten');
    await dialog().getByRole('button', { name: /Reload it/ }).click();
    await page.waitForFunction(() => document.querySelector('dialog[open] [data-key="Description"]')?.value === 'changed by another client');
    await dialog().getByRole('button', { name: 'Cancel' }).click();
  }, [412]);

  await step('delete with confirmation', async () => {
    await row('orders-copy').getByRole('button', { name: 'Delete orders-copy' }).click();
    await dialog().getByText('This cannot be undone').waitFor();
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    assert.equal((await api('GET', `${DESTS}/orders-copy`)).status, 200, 'cancel keeps it');
    await row('orders-copy').getByRole('button', { name: 'Delete orders-copy' }).click();
    await confirmDelete();
    await row('orders-copy').waitFor({ state: 'detached' });
    assert.equal((await api('GET', `${DESTS}/orders-copy`)).status, 404);
  });

  await step('search and filter the table; paging', async () => {
    const bulk = Array.from({ length: 30 }, (_, i) => ({
      Name: `bulk-${String(i).padStart(2, '0')}`, Type: 'HTTP', URL: `https://bulk${i}.example.com`, ProxyType: 'Internet', Authentication: 'NoAuthentication',
    }));
    assert.equal((await api('POST', DESTS, bulk)).status, 201);
    // Another view and back: the list is read again (a reload would drop the in-memory session).
    await page.getByRole('link', { name: 'Fragments', exact: true }).click();
    await page.getByRole('heading', { name: 'Fragments · subaccount level' }).waitFor();
    await page.getByRole('link', { name: 'Destinations', exact: true }).click();
    await page.locator('#list-summary', { hasText: '31 of 31 destinations' }).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 25);
    await page.getByText('Page 1 of 2').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('Page 2 of 2').waitFor();
    assert.equal(await page.locator('tbody tr').count(), 6);
    await page.getByLabel('Search').fill('bulk-1');
    await page.locator('#list-summary', { hasText: '10 of 31 destinations' }).waitFor();
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Authentication', { exact: true }).selectOption('BasicAuthentication');
    await page.locator('#list-summary', { hasText: '1 of 31 destinations' }).waitFor();
    await row('orders').waitFor();
    await page.getByLabel('Authentication', { exact: true }).selectOption('');
    await checkView('destinations');
    // The bulk ones go again (a bulk delete by the API), so that later views are short.
    const filter = encodeURIComponent(`Name in (${bulk.map((d) => `'${d.Name}'`).join(', ')})`);
    assert.equal((await api('DELETE', `${DESTS}?$filter=${filter}`)).status, 200);
  });

  await step('certificates: upload a PEM chain and a PKCS#12 with its password, generate one, details, delete', async () => {
    await page.getByRole('link', { name: 'Certificates', exact: true }).click();
    await page.getByRole('heading', { name: 'Certificates · subaccount level' }).waitFor();
    // A PEM chain.
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await dialog().locator('input[type=file]').setInputFiles(env('CHAIN_PEM'));
    assert.equal(await dialog().getByLabel('Name (required)').inputValue(), 'chain.pem');
    await checkView('upload');
    await save('Upload');
    await row('chain.pem').waitFor();
    // A PKCS#12 with a wrong password first: the API's reason shown, nothing stored.
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await dialog().locator('input[type=file]').setInputFiles(env('P12_FILE'));
    await dialog().getByLabel('Password').fill('not-the-password');
    await save('Upload');
    await dialog().locator('.form-error').filter({ hasText: /password|decrypt|MAC/i }).waitFor();
    await dialog().getByLabel('Password').fill(env('P12_PASSWORD'));
    await save('Upload');
    await row('bundle.p12').waitFor();
    assert.match(await row('bundle.p12').textContent(), /PKCS12|P12/i);
    // Generate.
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await dialog().getByLabel('Name (required)').fill('generated.pem');
    await dialog().getByLabel('Common name (CN)').fill('signpost-editor-test');
    await checkView('generate');
    await save('Generate');
    await row('generated.pem').waitFor();
    assert.match(await row('generated.pem').textContent(), /generated, renews automatically/);
    assert.match(await row('generated.pem').textContent(), /\d+ days/);
    await checkView('certificates');
    await shot('certificates');
    // Details: the chain's subject and issuer.
    await row('chain.pem').getByRole('button', { name: 'Details of chain.pem' }).click();
    await dialog().getByText('CN=mTLS Test CA').first().waitFor();
    await dialog().getByText('CN=127.0.0.1').first().waitFor();
    assert.equal(await dialog().locator('.chain').count(), 2, 'the leaf and its CA');
    await shot('certificate-details');
    await dialog().getByRole('button', { name: 'Close', exact: true }).click();
    // Delete the generated one.
    await row('generated.pem').getByRole('button', { name: 'Delete generated.pem' }).click();
    await confirmDelete();
    await row('generated.pem').waitFor({ state: 'detached' });
  }, [400, 422]);

  await step('check connection: trusted HTTPS ok, an untrusted certificate and a closed port each named', async () => {
    for (const d of [
      { Name: 'secure', URL: env('HTTPS_URL'), TrustStoreLocation: 'chain.pem' },
      { Name: 'untrusted', URL: env('HTTPS_URL') },
      { Name: 'closed', URL: env('CLOSED_URL') },
    ]) {
      const r = await api('POST', DESTS, { Type: 'HTTP', ProxyType: 'Internet', Authentication: 'NoAuthentication', ...d });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await page.getByRole('link', { name: 'Destinations', exact: true }).click();
    await page.getByLabel('Search').fill('secure');
    await row('secure').getByRole('button', { name: 'Check connection of secure' }).click();
    const summary = dialog().locator('li[data-step="summary"]');
    await summary.filter({ hasText: 'Reached' }).waitFor();
    assert.equal(await summary.getAttribute('class'), 'ok');
    for (const s of ['dns', 'tcp', 'tls', 'http']) {
      assert.equal(await dialog().locator(`li[data-step="${s}"]`).getAttribute('class'), 'ok', s);
    }
    assert.match(await dialog().locator('li[data-step="tls"]').textContent(), /TLSv1\.[23].*certificate CN=127\.0\.0\.1, issued by CN=mTLS Test CA/);
    assert.match(await dialog().locator('li[data-step="http"]').textContent(), /→ 200/);
    await shot('check-connection');
    await dialog().getByRole('button', { name: 'Close', exact: true }).click();

    await page.getByLabel('Search').fill('untrusted');
    await row('untrusted').getByRole('button', { name: 'Check connection of untrusted' }).click();
    await summary.filter({ hasText: 'Could not reach' }).waitFor();
    const tls = dialog().locator('li[data-step="tls"]');
    assert.equal(await tls.getAttribute('class'), 'bad');
    assert.match(await tls.textContent(), /not trusted/);
    assert.equal(await dialog().locator('li[data-step="http"]').count(), 0);
    await dialog().getByRole('button', { name: 'Close', exact: true }).click();

    await page.getByLabel('Search').fill('closed');
    await row('closed').getByRole('button', { name: 'Check connection of closed' }).click();
    await summary.filter({ hasText: 'Could not reach' }).waitFor();
    const tcp = dialog().locator('li[data-step="tcp"]');
    assert.equal(await tcp.getAttribute('class'), 'bad');
    assert.match(await tcp.textContent(), /refused/);
    await dialog().getByRole('button', { name: 'Close', exact: true }).click();
    await page.getByLabel('Search').fill('');
  });

  await step('a certificate in use cannot be deleted: the 409 names the destination', async () => {
    await page.getByRole('link', { name: 'Certificates', exact: true }).click();
    await row('chain.pem').getByRole('button', { name: 'Delete chain.pem' }).click();
    await confirmDelete();
    await page.locator('.toast.bad', { hasText: 'secure' }).waitFor();
    await row('chain.pem').waitFor();
  }, [409]);

  await step('labels: set on a destination and a certificate in their dialogs, bad ones refused beside the form; the list filters by label', async () => {
    await api('POST', DESTS, { Name: 'labelled', Type: 'HTTP', URL: 'https://labelled.example', Authentication: 'NoAuthentication', ProxyType: 'Internet' });
    // The token lives in the page only: a reload would sign out, so the view is opened anew.
    await page.getByRole('link', { name: 'Fragments', exact: true }).click();
    await page.getByRole('heading', { name: 'Fragments · subaccount level' }).waitFor();
    await page.getByRole('link', { name: 'Destinations', exact: true }).click();
    await page.getByRole('heading', { name: 'Destinations · subaccount level' }).waitFor();
    await row('labelled').getByRole('button', { name: 'Labels of labelled' }).click();
    await dialog().getByRole('button', { name: 'Add label' }).click();
    await dialog().getByLabel('Label key').last().fill('env');
    await dialog().getByLabel('Values (comma-separated)').last().fill('prod, eu');
    // A key with a space is refused by the server; the reason is shown, nothing stored.
    await dialog().getByRole('button', { name: 'Add label' }).click();
    await dialog().getByLabel('Label key').last().fill('bad key');
    await dialog().getByLabel('Values (comma-separated)').last().fill('x');
    await dialog().getByRole('button', { name: 'Save labels' }).click();
    await dialog().locator('.form-error', { hasText: 'bad key' }).waitFor();
    assert.deepEqual((await api('GET', `${DESTS}/labelled/labels`)).body, []);
    await dialog().getByRole('button', { name: 'Remove label bad key' }).click();
    await dialog().getByRole('button', { name: 'Save labels' }).click();
    await dialog().waitFor({ state: 'detached' });
    assert.deepEqual((await api('GET', `${DESTS}/labelled/labels`)).body, [{ key: 'env', values: ['prod', 'eu'] }]);
    // Opened again, the dialog shows what is stored.
    await row('labelled').getByRole('button', { name: 'Labels of labelled' }).click();
    assert.equal(await dialog().getByLabel('Label key').first().inputValue(), 'env');
    assert.equal(await dialog().getByLabel('Values (comma-separated)').first().inputValue(), 'prod, eu');
    await checkView('labels dialog');
    await shot('labels');
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    // The label filter asks the server: only the labelled destination is left.
    const filter = page.getByLabel('Labels', { exact: true });
    await filter.fill('env=prod');
    await filter.press('Enter');
    await page.locator('#list-summary', { hasText: 'with these labels' }).waitFor();
    assert.deepEqual(await page.locator('tbody tr').evaluateAll((rs) => rs.map((r) => r.dataset.name)), ['labelled']);
    await filter.fill('env=nowhere');
    await filter.press('Enter');
    await page.locator('.empty', { hasText: 'No destination' }).waitFor();
    await filter.fill('');
    await filter.press('Enter');
    await row('labelled').waitFor();
    // A certificate's labels, from the certificates view.
    await page.getByRole('link', { name: 'Certificates', exact: true }).click();
    await row('chain.pem').getByRole('button', { name: 'Labels of chain.pem' }).click();
    await dialog().getByRole('button', { name: 'Add label' }).click();
    await dialog().getByLabel('Label key').last().fill('use');
    await dialog().getByLabel('Values (comma-separated)').last().fill('mtls');
    await dialog().getByRole('button', { name: 'Save labels' }).click();
    await dialog().waitFor({ state: 'detached' });
    assert.deepEqual((await api('GET', '/destination-configuration/v1/subaccountCertificates/chain.pem/labels')).body, [{ key: 'use', values: ['mtls'] }]);
    await api('DELETE', `${DESTS}/labelled`);
  }, [400]);

  await step('fragments: create, edit, delete', async () => {
    await page.getByRole('link', { name: 'Fragments', exact: true }).click();
    await page.getByRole('heading', { name: 'Fragments · subaccount level' }).waitFor();
    await page.getByRole('button', { name: 'New fragment' }).click();
    await fill('FragmentName', 'eu-proxy');
    await dialog().getByRole('button', { name: 'Add property' }).click();
    await dialog().getByLabel('Property name').last().fill('ProxyType');
    await dialog().getByLabel('Property name').last().dispatchEvent('change');
    await dialog().getByLabel('Value of ProxyType').fill('OnPremise');
    await save('Create');
    await row('eu-proxy').waitFor();
    const frag = await api('GET', '/destination-configuration/v1/subaccountDestinationFragments/eu-proxy');
    assert.equal(frag.body.ProxyType, 'OnPremise');
    await row('eu-proxy').getByRole('button', { name: 'Edit eu-proxy' }).click();
    await dialog().getByLabel('Value of ProxyType').fill('Internet');
    await save('Save');
    await dialog().waitFor({ state: 'detached' });
    assert.equal((await api('GET', '/destination-configuration/v1/subaccountDestinationFragments/eu-proxy')).body.ProxyType, 'Internet');
    await checkView('fragments');
    await shot('fragments');
    await row('eu-proxy').getByRole('button', { name: 'Delete eu-proxy' }).click();
    await confirmDelete();
    await row('eu-proxy').waitFor({ state: 'detached' });
  });

  await step('import a destination exported from the cockpit; a clash with "stop" imports nothing; export', async () => {
    await page.getByRole('link', { name: 'Import and export', exact: true }).click();
    await page.getByRole('heading', { name: 'Import and export · subaccount level' }).waitFor();
    await checkView('transfer');
    await page.locator('main input[type=file]').setInputFiles(env('IMPORT_FILE'));
    await page.getByText(/Imported .*\.properties/).waitFor();
    const imported = await api('GET', `${DESTS}/cockpit-export`);
    assert.equal(imported.status, 200);
    assert.equal(imported.body.URL, 'https://cockpit.example.com/api');
    assert.equal(imported.body.clientSecret, 'from-the-cockpit');
    // Again: the name exists, the default policy stops before anything is written.
    await page.locator('main input[type=file]').setInputFiles(env('IMPORT_FILE'));
    await page.getByText(/Nothing imported: destination cockpit-export exists/).waitFor();
    await shot('import-export');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export subaccount level' }).click();
    const file = await (await download).path();
    const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.ok(bundle.destinations.some((d) => d.Name === 'cockpit-export'));
    assert.ok(bundle.certificates.some((c) => c.Name === 'chain.pem'));
  });

  await step('the instance level is its own', async () => {
    await page.getByRole('link', { name: 'Destinations', exact: true }).click();
    await page.getByLabel('Level').selectOption('instance');
    await page.getByRole('heading', { name: 'Destinations · instance level' }).waitFor();
    await page.getByText('No destinations on instance level yet').waitFor();
    await page.getByRole('button', { name: 'New destination' }).click();
    await fill('Name', 'instance-only');
    await fill('URL', 'https://instance.example.com');
    await save('Create');
    await row('instance-only').waitFor();
    assert.equal((await api('GET', '/destination-configuration/v1/instanceDestinations/instance-only')).status, 200);
    assert.equal((await api('GET', `${DESTS}/instance-only`)).status, 404);
    await page.getByLabel('Level').selectOption('subaccount');
    await row('orders').waitFor();
    await shot('destinations');
  });

  await step('keyboard: skip link first, focus visible, a dialog closes with Escape', async () => {
    // The skip link comes before the views' links; the next Tab lands on the first of them.
    await page.getByRole('link', { name: 'Destinations', exact: true }).focus();
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Destinations');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused control shows its focus');
    // Open a form from the keyboard and leave it with Escape.
    await page.getByRole('button', { name: 'New destination' }).focus();
    await page.keyboard.press('Enter');
    await dialog().waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.dataset.key), 'Name', 'the first field has the focus');
    await page.keyboard.press('Escape');
    await dialog().waitFor({ state: 'detached' });
  });

  await step('390 px wide: no sideways scrolling; dark scheme follows the system', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await row('orders').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
    await shot('destinations-390px');
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, b] = bg.match(/\d+/g).map(Number);
    assert.ok(r + g + b < 150, `dark background, got ${bg}`);
    await shot('destinations-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('the token is renewed before it expires, and the session goes on', async () => {
    const renewal = page.waitForRequest((r) => r.url().endsWith('/oauth/token') && r.method() === 'POST');
    // The token lives 43,199 s (SIGNPOST_TOKEN_LIFETIME's default); the editor renews at 4/5 of it.
    await page.clock.fastForward('10:00:00');
    const answer = await (await renewal).response();
    assert.equal(answer.status(), 200);
    await page.getByRole('link', { name: 'Fragments', exact: true }).click();
    await page.getByText('No fragments on subaccount level yet').waitFor();
    await page.getByRole('link', { name: 'Destinations', exact: true }).click();
    await row('orders').waitFor();
  });

  await step('sign out, then sign in with the broker credentials and choose the instance', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to the Destinations editor' }).waitFor();
    await page.getByLabel('User').fill(env('BROKER_USER'));
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'List instances' }).click();
    await page.locator('form[aria-labelledby="broker-title"] .form-error').filter({ hasText: /.+/ }).waitFor();
    await page.getByLabel('Password').fill(env('BROKER_PASSWORD'));
    await page.getByRole('button', { name: 'List instances' }).click();
    await page.getByRole('button', { name: `Open instance ${KEY.instanceid}` }).click();
    await page.getByRole('heading', { name: 'Destinations · subaccount level' }).waitFor();
    await row('orders').waitFor();
    assert.match(await page.locator('#who').textContent(), new RegExp(`instance ${KEY.instanceid}`));
  }, [401]);
} catch (e) {
  await page.screenshot({ path: path.join(OUT, 'failure.png') }).catch(() => {});
  console.error(`FAILED at "${stepName}": ${e.stack || e}`);
  if (problems.length) console.error(problems.join('\n'));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(`all steps passed; screenshots in ${OUT}`);
