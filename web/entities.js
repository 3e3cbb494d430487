// The destinations and fragments views: a searchable, paged table; create, edit, clone and
// delete; check connection. Edits send If-Match with the ETag read, so a change made meanwhile
// by another client is a 412 that the editor offers to reload.

import { h, replace, field, select, modal, confirmDialog, toast } from './dom.js';
import { request, collection, ApiError } from './api.js';
import { entityForm, TYPES, AUTHENTICATIONS } from './forms.js';
import { labelsDialog, labelFilter } from './labels.js';

const PAGE_SIZE = 25;

function nameOf(kind, e) { return kind === 'fragment' ? e.FragmentName : e.Name; }

/** Renders the list view of `kind` ('destination' or 'fragment') on `level` into `main`. */
export async function listView(main, kind, level) {
  const noun = kind === 'fragment' ? 'fragment' : 'destination';
  const title = `${kind === 'fragment' ? 'Fragments' : 'Destinations'} · ${level} level`;
  const state = { all: [], page: 0, query: '', type: '', auth: '', labels: '' };
  const tableBox = h('div', { class: 'table-wrap' });
  const pager = h('div', { class: 'pager' });
  const summary = h('span', { id: 'list-summary' });

  const search = h('input', { type: 'search', placeholder: kind === 'fragment' ? 'Name or property' : 'Name, URL, type or authentication', value: '' });
  search.addEventListener('input', () => { state.query = search.value.trim().toLowerCase(); state.page = 0; draw(); });
  const controls = [h('div', { class: 'grow' }, field('Search', search).wrap)];
  if (kind === 'destination') {
    const type = select([['', 'Any type'], ...TYPES], '');
    type.addEventListener('change', () => { state.type = type.value; state.page = 0; draw(); });
    const auth = select([['', 'Any authentication'], ...Object.keys(AUTHENTICATIONS)], '');
    auth.addEventListener('change', () => { state.auth = auth.value; state.page = 0; draw(); });
    controls.push(h('div', {}, field('Type', type).wrap), h('div', {}, field('Authentication', auth).wrap));
  }
  // The label filter goes to the server: $filter=Label['key'] HAS ('value', ...).
  const labels = h('input', { type: 'search', placeholder: 'env=prod team=a,b', value: '', spellcheck: 'false' });
  const labelsField = field('Labels', labels, 'key=value1,value2; all must match');
  labels.addEventListener('change', async () => {
    const filter = labelFilter(labels.value);
    labelsField.error.textContent = filter === null ? 'Write key=value1,value2, separated by spaces' : '';
    if (filter === null) return;
    state.labels = filter;
    state.page = 0;
    await load();
  });
  controls.push(h('div', {}, labelsField.wrap));
  const create = h('button', { type: 'button', class: 'primary', onclick: () => openForm(null, 'create') }, `New ${noun}`);
  controls.push(h('div', {}, create));

  replace(main, h('h1', {}, title), h('div', { class: 'toolbar' }, controls), summary, tableBox, pager);

  function matches(e) {
    if (state.type && e.Type !== state.type) return false;
    if (state.auth && (e.Authentication || 'NoAuthentication') !== state.auth) return false;
    if (!state.query) return true;
    const hay = kind === 'fragment'
      ? Object.entries(e).filter(([k]) => !/(password|secret)$/i.test(k)).map(([k, v]) => `${k} ${v}`).join(' ')
      : [e.Name, e.Type, e.Authentication, e.URL, e.Description].join(' ');
    return hay.toLowerCase().includes(state.query);
  }

  function draw() {
    const shown = state.all.filter(matches);
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const slice = shown.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
    summary.textContent = `${shown.length} of ${state.all.length} ${noun}s${state.labels ? ' with these labels' : ''}`;
    if (slice.length === 0) {
      replace(tableBox, h('div', { class: 'empty' }, state.all.length === 0
        ? `No ${noun}s on ${level} level yet. Create one with “New ${noun}”.` : `No ${noun} matches.`));
    } else {
      const head = kind === 'fragment'
        ? h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Properties'), h('th', { scope: 'col' }, h('span', { class: 'sr' }, 'Actions')))
        : h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col', class: 'optional' }, 'Authentication'), h('th', { scope: 'col', class: 'optional' }, 'URL'), h('th', { scope: 'col' }, 'Actions'));
      const rows = slice.map((e) => {
        const name = nameOf(kind, e);
        const actions = h('td', { class: 'actions' },
          h('button', { type: 'button', onclick: () => openEdit(name, 'edit'), 'aria-label': `Edit ${name}` }, 'Edit'), ' ',
          h('button', { type: 'button', onclick: () => openEdit(name, 'clone'), 'aria-label': `Clone ${name}` }, 'Clone'), ' ',
          kind === 'destination' ? h('button', { type: 'button', onclick: () => check(name), 'aria-label': `Check connection of ${name}` }, 'Check') : null, ' ',
          h('button', { type: 'button', onclick: () => labelsDialog(`${collection(level, kind)}/${encodeURIComponent(name)}`, name, noun), 'aria-label': `Labels of ${name}` }, 'Labels'), ' ',
          h('button', { type: 'button', class: 'danger', onclick: () => remove(name), 'aria-label': `Delete ${name}` }, 'Delete'));
        return kind === 'fragment'
          ? h('tr', { dataset: { name } }, h('td', {}, name), h('td', {}, String(Object.keys(e).length - 1)), actions)
          : h('tr', { dataset: { name } }, h('td', {}, name), h('td', {}, e.Type || ''),
            h('td', { class: 'optional' }, e.Authentication || ''), h('td', { class: 'optional url' }, e.URL || ''), actions);
      });
      replace(tableBox, h('table', {}, h('caption', { class: 'sr' }, title), h('thead', {}, head), h('tbody', {}, rows)));
    }
    const prev = h('button', { type: 'button', disabled: state.page === 0, onclick: () => { state.page -= 1; draw(); } }, 'Previous');
    const next = h('button', { type: 'button', disabled: state.page >= pages - 1, onclick: () => { state.page += 1; draw(); } }, 'Next');
    replace(pager, prev, `Page ${state.page + 1} of ${pages}`, next);
  }

  async function load() {
    // Busy while the list reloads: its rows are about to be replaced (assistive technology waits,
    // and so do the browser tests before they click a row's button).
    tableBox.setAttribute('aria-busy', 'true');
    try {
      const query = state.labels ? `?$filter=${encodeURIComponent(state.labels)}` : '';
      const res = await request('GET', `${collection(level, kind)}${query}`);
      state.all = (Array.isArray(res.body) ? res.body : []).sort((a, b) => String(nameOf(kind, a)).localeCompare(String(nameOf(kind, b))));
      draw();
    } catch (e) {
      replace(tableBox, h('div', { class: 'empty bad', role: 'alert' }, e.message));
    } finally {
      tableBox.removeAttribute('aria-busy');
    }
  }

  async function openEdit(name, mode) {
    try {
      const res = await request('GET', `${collection(level, kind)}/${encodeURIComponent(name)}`);
      openForm(res.body, mode, res.etag);
    } catch (e) { toast(e.message, 'bad'); }
  }

  function openForm(entity, mode, etag) {
    const heading = { create: `New ${noun}`, edit: `Edit ${noun} ${entity && nameOf(kind, entity)}`, clone: `Clone ${noun} ${entity && nameOf(kind, entity)}` }[mode];
    const m = modal(heading, { side: true });
    const form = entityForm(m.body, kind, entity, mode);
    const save = h('button', { type: 'button', class: 'primary' }, mode === 'edit' ? 'Save' : 'Create');
    const conflict = h('div', { class: 'form-error', role: 'alert' });
    save.addEventListener('click', async () => {
      save.disabled = true;
      conflict.replaceChildren();
      const body = form.collect();
      try {
        if (mode === 'edit') {
          await request('PUT', collection(level, kind), { body, headers: etag ? { 'If-Match': etag } : {} });
        } else {
          await request('POST', collection(level, kind), { body });
        }
        m.close();
        toast(`${mode === 'edit' ? 'Saved' : 'Created'} ${noun} ${nameOf(kind, body)}`);
        await load();
      } catch (e) {
        if (e instanceof ApiError && e.status === 412) {
          replace(conflict, `Someone changed this ${noun} since you opened it. `,
            h('button', { type: 'button', onclick: () => { m.close(); openEdit(nameOf(kind, body), 'edit'); } }, 'Reload it (your changes are dropped)'));
          conflict.querySelector('button').focus();
        } else if (e instanceof ApiError && e.status === 404 && mode === 'edit') {
          replace(conflict, `This ${noun} was deleted meanwhile; create it again to keep your changes.`);
        } else {
          form.showError(e.message);
        }
      } finally {
        save.disabled = false;
      }
    });
    m.foot.append(conflict, h('button', { type: 'button', onclick: m.close }, 'Cancel'), save);
    form.focusFirst();
  }

  async function remove(name) {
    const path = `${collection(level, kind)}/${encodeURIComponent(name)}`;
    let current;
    try { current = await request('GET', path); } catch (e) { toast(e.message, 'bad'); return; }
    if (!await confirmDialog(`Delete ${noun}`, `Delete the ${noun} “${name}” on ${level} level? This cannot be undone.`)) return;
    try {
      // The ETag read before the confirmation: a change made meanwhile is a 412, nothing deleted.
      await request('DELETE', path, { headers: current.etag ? { 'If-Match': current.etag } : {} });
      toast(`Deleted ${noun} ${name}`);
    } catch (e) {
      toast(e instanceof ApiError && e.status === 412 ? `The ${noun} ${name} changed meanwhile and was not deleted; the list is reloaded` : e.message, 'bad');
    }
    await load();
  }

  async function check(name) {
    const m = modal(`Check connection · ${name}`);
    const list = h('ul', { class: 'checklist', 'aria-live': 'polite' }, h('li', {}, 'Checking…'));
    m.body.append(list);
    m.foot.append(h('button', { type: 'button', onclick: m.close }, 'Close'));
    try {
      const res = await request('POST', `/signpost/v1/destinations/${level}/${encodeURIComponent(name)}/check`);
      replace(list, checklist(res.body));
    } catch (e) {
      replace(list, h('li', { class: 'bad', role: 'alert' }, e.message));
    }
  }

  await load();
}

const STEP_NAMES = { token: 'Token flow', dns: 'DNS', tcp: 'TCP connect', tls: 'TLS', http: 'HTTP' };

/** The check report as checklist items. */
export function checklist(report) {
  const items = [h('li', { class: report.ok ? 'ok' : 'bad', dataset: { step: 'summary' } },
    h('span', { class: 'mark', 'aria-hidden': 'true' }, report.ok ? '✓' : '✗'),
    report.ok ? `Reached ${report.target}` : `Could not reach ${report.target || 'the destination'}`)];
  for (const s of report.steps || []) {
    const details = [];
    if (s.addresses) details.push(`addresses ${s.addresses.join(', ')}`);
    if (s.address) details.push(`connected to ${s.address}`);
    if (s.protocol) details.push(s.protocol);
    if (s.certificate) {
      const c = s.certificate;
      details.push(`certificate ${c.subject}, issued by ${c.issuer}, valid until ${c.notAfter} (${c.daysLeft} days left)`);
    }
    if (s.authentication) details.push(`${s.authentication}${s.tokens !== undefined ? `, ${s.tokens} token(s)` : ''}`);
    if (s.method) details.push(`${s.method}${s.status ? ` → ${s.status}` : ''}`);
    items.push(h('li', { class: s.ok ? 'ok' : 'bad', dataset: { step: s.step } },
      h('span', { class: 'mark', 'aria-hidden': 'true' }, s.ok ? '✓' : '✗'),
      h('strong', {}, STEP_NAMES[s.step] || s.step), ` ${s.ok ? 'passed' : 'failed'}`,
      typeof s.ms === 'number' ? h('span', { class: 'detail' }, ` ${s.ms.toFixed(1)} ms`) : null,
      details.length ? h('div', { class: 'detail' }, details.join(' · ')) : null,
      s.error ? h('div', { class: 'detail bad' }, s.error) : null));
  }
  return items;
}
