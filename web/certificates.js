// The certificates view (seed 002): a table with validity and how each was made; upload by file
// picker or drag and drop; generate; a side panel with the details; delete with confirmation
// (a certificate in use is a 409 naming the destinations that use it).

import { h, replace, field, select, modal, confirmDialog, toast, fileBase64, dropZone } from './dom.js';
import { request, collection } from './api.js';
import { labelsDialog } from './labels.js';

const ACCEPT = '.jks,.pfx,.p12,.pem,.cer,.crt,.der,.key';

function leafOf(cert) {
  const entry = (cert.entries || [])[0];
  return entry && entry.chain && entry.chain[0];
}

function madeBy(cert) {
  if (cert.origin === 'generated') {
    if (cert.lastRenewal) return 'generated, renewed automatically';
    return cert.automaticRenewal ? 'generated, renews automatically' : 'generated';
  }
  return 'uploaded';
}

function daysBadge(days) {
  if (days === undefined || days === null) return h('span', { class: 'badge' }, '–');
  const kind = days < 0 ? 'bad' : days <= 30 ? 'warn' : 'ok';
  return h('span', { class: `badge ${kind}` }, days < 0 ? 'expired' : `${days} days`);
}

/** Renders the certificates of `level` into `main`. */
export async function certificatesView(main, level) {
  const tableBox = h('div', { class: 'table-wrap' });
  const upload = h('button', { type: 'button', class: 'primary', onclick: () => uploadDialog() }, 'Upload');
  const generate = h('button', { type: 'button', onclick: () => generateDialog() }, 'Generate');
  replace(main, h('h1', {}, `Certificates · ${level} level`), h('div', { class: 'toolbar' }, upload, generate), tableBox);

  async function load() {
    try {
      const res = await request('GET', `/signpost/v1/certificates/${level}`);
      const certs = (res.body || []).sort((a, b) => a.name.localeCompare(b.name));
      if (certs.length === 0) {
        replace(tableBox, h('div', { class: 'empty' }, `No certificates on ${level} level yet. Upload or generate one.`));
        return;
      }
      const rows = certs.map((c) => {
        const leaf = leafOf(c);
        return h('tr', { dataset: { name: c.name } },
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => details(c.name), 'aria-label': `Details of ${c.name}` }, c.name)),
          h('td', {}, c.format || (c.error ? 'unreadable' : '')), 
          h('td', { class: 'optional' }, leaf ? leaf.notAfter.slice(0, 10) : (c.locked ? 'locked (no password)' : '')),
          h('td', {}, daysBadge(leaf && leaf.daysLeft)),
          h('td', { class: 'optional' }, madeBy(c)),
          h('td', { class: 'actions' },
            h('button', { type: 'button', onclick: () => labelsDialog(`${collection(level, 'certificate')}/${encodeURIComponent(c.name)}`, c.name, 'certificate'), 'aria-label': `Labels of ${c.name}` }, 'Labels'), ' ',
            h('button', { type: 'button', class: 'danger', onclick: () => remove(c.name), 'aria-label': `Delete ${c.name}` }, 'Delete')));
      });
      replace(tableBox, h('table', {}, h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col', class: 'optional' }, 'Valid until'),
        h('th', { scope: 'col' }, 'Days left'), h('th', { scope: 'col', class: 'optional' }, 'Made'), h('th', { scope: 'col' }, 'Actions'))),
      h('tbody', {}, rows)));
    } catch (e) {
      replace(tableBox, h('div', { class: 'empty bad', role: 'alert' }, e.message));
    }
  }

  function uploadDialog() {
    const m = modal('Upload a certificate');
    const name = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off' });
    const password = h('input', { type: 'password', autocomplete: 'new-password' });
    const chosen = h('p', { class: 'hint', 'aria-live': 'polite' }, 'No file chosen');
    const error = h('div', { class: 'form-error', role: 'alert' });
    let file = null;
    const { zone } = dropZone('Drop a JKS, PFX, P12, PEM, CER or CRT file here, or', ACCEPT, (f) => {
      file = f;
      chosen.textContent = `${f.name} (${f.size} bytes)`;
      if (!name.value) name.value = f.name;
    });
    m.body.append(zone, chosen, field('Name (required)', name, 'Usually the file name').wrap,
      field('Password', password, 'For a keystore (JKS, PFX, P12) or an encrypted key; stored encrypted, never shown').wrap, error);
    const go = h('button', { type: 'button', class: 'primary' }, 'Upload');
    go.addEventListener('click', async () => {
      error.textContent = '';
      if (!file) { error.textContent = 'Choose a file first'; return; }
      if (!name.value.trim()) { error.textContent = 'Name is required'; name.focus(); return; }
      go.disabled = true;
      try {
        const body = { Name: name.value.trim(), Content: await fileBase64(file) };
        if (password.value) body.Password = password.value;
        await request('POST', collection(level, 'certificate'), { body });
        m.close();
        toast(`Uploaded ${body.Name}`);
        await load();
      } catch (e) {
        error.textContent = e.message;
      } finally { go.disabled = false; }
    });
    m.foot.append(h('button', { type: 'button', onclick: m.close }, 'Cancel'), go);
  }

  function generateDialog() {
    const m = modal('Generate a certificate');
    const name = h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off' });
    const type = select([['PEM', 'PEM'], ['PKCS12', 'PKCS#12'], ['JKS', 'JKS']], 'PEM');
    const cn = h('input', { type: 'text', spellcheck: 'false' });
    const value = h('input', { type: 'number', min: '1', value: '30' });
    const unit = select(['DAYS', 'MONTHS', 'YEARS'], 'DAYS');
    const renew = h('input', { type: 'checkbox', checked: true, id: 'gen-renew' });
    const password = h('input', { type: 'password', autocomplete: 'new-password' });
    const error = h('div', { class: 'form-error', role: 'alert' });
    m.body.append(h('div', { class: 'grid2' }, field('Name (required)', name).wrap, field('Type', type).wrap,
      field('Common name (CN)', cn, 'Defaults to the name').wrap, field('Password', password, 'Needed for PKCS#12 and JKS').wrap,
      field('Validity', value).wrap, field('Unit', unit, 'At most one year').wrap),
    h('div', { class: 'field' }, renew, ' ', h('label', { for: 'gen-renew', class: 'inline' }, 'Renew automatically')), error);
    const go = h('button', { type: 'button', class: 'primary' }, 'Generate');
    go.addEventListener('click', async () => {
      error.textContent = '';
      if (!name.value.trim()) { error.textContent = 'Name is required'; name.focus(); return; }
      go.disabled = true;
      const attributes = { CN: cn.value.trim() || name.value.trim(), Validity: { TimeUnit: unit.value, Value: Number(value.value) }, AutomaticRenew: renew.checked };
      if (password.value) attributes.Password = password.value;
      try {
        await request('POST', collection(level, 'certificate'), { body: { Name: name.value.trim(), Type: type.value, Attributes: attributes } });
        m.close();
        toast(`Generated ${name.value.trim()}`);
        await load();
      } catch (e) { error.textContent = e.message; } finally { go.disabled = false; }
    });
    m.foot.append(h('button', { type: 'button', onclick: m.close }, 'Cancel'), go);
  }

  async function details(name) {
    const m = modal(`Certificate ${name}`, { side: true });
    m.foot.append(h('button', { type: 'button', onclick: m.close }, 'Close'));
    try {
      const { body: c } = await request('GET', `/signpost/v1/certificates/${level}/${encodeURIComponent(name)}`);
      const facts = [['Format', c.format || '–'], ['Made', madeBy(c)], ['Automatic renewal', c.automaticRenewal ? 'on' : 'off'],
        ['Last renewal', c.lastRenewal || '–'], ['Locked', c.locked ? 'yes: uploaded without its password' : 'no']];
      m.body.append(h('dl', { class: 'props' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
      if (c.error) m.body.append(h('p', { class: 'bad' }, c.error));
      for (const entry of c.entries || []) {
        m.body.append(h('h3', {}, `${entry.alias ? `${entry.alias} · ` : ''}${entry.kind}`));
        for (const cert of entry.chain || []) {
          m.body.append(h('div', { class: 'chain' }, h('dl', { class: 'props' }, [
            ['Subject', cert.subject], ['Issuer', cert.issuer], ['Valid from', cert.notBefore], ['Valid until', cert.notAfter],
            ['Days left', String(cert.daysLeft)], ['Serial', cert.serialNumber], ['Key', `${cert.keyAlgorithm} ${cert.keySize || ''}`.trim()],
            ['SHA-256', cert.sha256Fingerprint], ['Alternative names', (cert.subjectAltNames || []).join(', ') || '–'], ['CA', cert.isCA ? 'yes' : 'no'],
          ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))));
        }
      }
    } catch (e) { m.body.append(h('p', { class: 'bad', role: 'alert' }, e.message)); }
  }

  async function remove(name) {
    if (!await confirmDialog('Delete certificate', `Delete the certificate “${name}” on ${level} level? This cannot be undone.`)) return;
    try {
      await request('DELETE', `${collection(level, 'certificate')}/${encodeURIComponent(name)}`);
      toast(`Deleted ${name}`);
      await load();
    } catch (e) {
      // 409: the certificate is in use; the message names the destinations.
      toast(e.message, 'bad');
    }
  }

  await load();
}
