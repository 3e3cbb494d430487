// Import and export of destinations: the CLI's export file (JSON with destinations, fragments
// and certificates), a list or one destination as JSON, and SAP cockpit's properties-style
// export of one destination.

import { h, replace, toast, download, dropZone, select, field } from './dom.js';
import { request, collection } from './api.js';

/** Parses a Java-properties file (the cockpit's export of one destination) into an object. */
export function parseProperties(text) {
  const out = {};
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i += 1) {
    let line = lines[i].replace(/^[ \t\f]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const lineNo = i + 1;
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[i + 1].replace(/^[ \t\f]+/, '');
      i += 1;
    }
    let cut = line.length;
    let sepLen = 0;
    for (let j = 0, esc = false; j < line.length; j += 1) {
      const c = line[j];
      if (esc) { esc = false; continue; }
      if (c === '\\') { esc = true; continue; }
      if (c === '=' || c === ':' || c === ' ' || c === '\t' || c === '\f') { cut = j; sepLen = 1; break; }
    }
    const key = unescape(line.slice(0, cut), lineNo);
    let rest = line.slice(cut + sepLen);
    if (sepLen && /[ \t\f]/.test(line[cut])) rest = rest.replace(/^[ \t\f]*[=:]?/, '');
    const value = unescape(rest.replace(/^[ \t\f]+/, ''), lineNo);
    if (!key) throw new Error(`line ${lineNo}: a property without a name`);
    out[key] = value;
  }
  if (Object.keys(out).length === 0) throw new Error('no properties');
  return out;
}

function unescape(s, lineNo) {
  return s.replace(/\\(u[0-9a-fA-F]{4}|u.{0,4}|.)/g, (m, c) => {
    if (c[0] === 'u') {
      if (!/^u[0-9a-fA-F]{4}$/.test(c)) throw new Error(`line ${lineNo}: a bad \\u escape`);
      return String.fromCharCode(parseInt(c.slice(1), 16));
    }
    return { t: '\t', n: '\n', r: '\r', f: '\f' }[c] || c;
  });
}

/** Reads an import file into {destinations, fragments, certificates}. */
export function readBundle(text) {
  let value;
  try { value = JSON.parse(text); } catch {
    return { destinations: [parseProperties(text)], fragments: [], certificates: [] };
  }
  if (Array.isArray(value)) return { destinations: value, fragments: [], certificates: [] };
  if (value && typeof value === 'object') {
    if (['destinations', 'fragments', 'certificates'].some((k) => k in value)) {
      return { destinations: value.destinations || [], fragments: value.fragments || [], certificates: value.certificates || [] };
    }
    return { destinations: [value], fragments: [], certificates: [] };
  }
  throw new Error('not an export, a destination or a list of destinations');
}

export function transferView(main, level) {
  const result = h('div', { 'aria-live': 'polite' });
  const policy = select([['fail', 'Stop when a name exists already'], ['ignore', 'Keep what exists, import the rest'], ['update', 'Replace what exists']], 'fail');
  const { zone } = dropZone('Drop an export (JSON) or a destination exported from SAP’s cockpit here, or', '.json,.properties,.txt,*', (f) => importFile(f));
  const exportButton = h('button', { type: 'button', class: 'primary', onclick: exportAll }, `Export ${level} level`);
  replace(main, h('h1', {}, `Import and export · ${level} level`),
    h('div', { class: 'card' }, h('h2', {}, 'Export'), h('p', {}, 'Destinations, fragments and certificates as one JSON file, the format of signpost export.'), exportButton),
    h('div', { class: 'card' }, h('h2', {}, 'Import'), field('When a name exists already', policy).wrap, zone, result));

  async function exportAll() {
    try {
      const bundle = {};
      for (const [section, kind] of [['destinations', 'destination'], ['fragments', 'fragment'], ['certificates', 'certificate']]) {
        bundle[section] = (await request('GET', collection(level, kind))).body || [];
      }
      download(`signpost-${level}-export.json`, `${JSON.stringify(bundle, null, 2)}\n`);
      toast(`Exported ${bundle.destinations.length} destinations, ${bundle.fragments.length} fragments, ${bundle.certificates.length} certificates`);
    } catch (e) { toast(e.message, 'bad'); }
  }

  async function importFile(file) {
    replace(result, `Reading ${file.name}…`);
    let bundle;
    try { bundle = readBundle(await file.text()); } catch (e) { replace(result, h('p', { class: 'bad', role: 'alert' }, `${file.name}: ${e.message}`)); return; }
    const lines = [];
    let failed = 0;
    const plan = [];
    try {
      for (const [section, kind, key] of [['certificates', 'certificate', 'Name'], ['fragments', 'fragment', 'FragmentName'], ['destinations', 'destination', 'Name']]) {
        if (!bundle[section].length) continue;
        const existing = new Set(((await request('GET', collection(level, kind))).body || []).map((e) => e[key]));
        plan.push({ kind, key, items: bundle[section], existing });
      }
    } catch (e) { replace(result, h('p', { class: 'bad', role: 'alert' }, e.message)); return; }
    const clashes = plan.flatMap((p) => p.items.filter((i) => p.existing.has(i[p.key])).map((i) => `${p.kind} ${i[p.key]}`));
    if (clashes.length && policy.value === 'fail') {
      replace(result, h('p', { class: 'bad', role: 'alert' },
        `Nothing imported: ${clashes.join(', ')} exist${clashes.length === 1 ? 's' : ''} on ${level} level already; choose to keep or replace what exists.`));
      return;
    }
    for (const { kind, key, items, existing } of plan) {
      for (const item of items) {
        const name = item[key];
        const exists = existing.has(name);
        if (exists && policy.value === 'ignore') { lines.push(h('li', {}, `${kind} ${name}: kept as it was`)); continue; }
        try {
          await request(exists ? 'PUT' : 'POST', collection(level, kind), { body: item });
          lines.push(h('li', { class: 'ok' }, `${kind} ${name}: ${exists ? 'replaced' : 'created'}`));
        } catch (e) {
          failed += 1;
          lines.push(h('li', { class: 'bad' }, `${kind} ${name || '(no name)'}: ${e.message}`));
        }
      }
    }
    replace(result, h('p', { role: failed ? 'alert' : 'status' }, failed ? `${failed} failed` : `Imported ${file.name}`), h('ul', {}, lines));
  }
}
