// Labels of destinations, fragments and certificates: a dialog that shows an entity's labels
// (GET .../{name}/labels) as rows of a key and its comma-separated values, and saves them all
// at once (PUT .../{name}/labels); and the list filter `key=value1,value2` that becomes
// $filter=Label['key'] HAS ('value1', 'value2').

import { h, replace, field, modal, toast } from './dom.js';
import { request } from './api.js';

/** Opens the labels dialog of the entity at `path` (its collection path and encoded name). */
export async function labelsDialog(path, name, noun) {
  let current;
  try {
    current = (await request('GET', `${path}/labels`)).body || [];
  } catch (e) { toast(e.message, 'bad'); return; }
  const m = modal(`Labels · ${name}`);
  const rows = h('div', { class: 'label-rows' });
  const error = h('div', { class: 'form-error', role: 'alert' });
  const addRow = (key = '', values = []) => {
    const keyInput = h('input', { type: 'text', value: key, autocomplete: 'off', dataset: { role: 'label-key' } });
    const valuesInput = h('input', { type: 'text', value: values.join(', '), autocomplete: 'off', dataset: { role: 'label-values' } });
    const row = h('div', { class: 'label-row' },
      field('Label key', keyInput).wrap,
      h('div', { class: 'grow' }, field('Values (comma-separated)', valuesInput).wrap));
    const remove = h('button', { type: 'button', class: 'danger', onclick: () => row.remove() }, 'Remove');
    const name = () => remove.setAttribute('aria-label', `Remove label ${keyInput.value.trim() || 'row'}`);
    keyInput.addEventListener('input', name);
    name();
    row.append(remove);
    rows.append(row);
    return keyInput;
  };
  for (const l of current) addRow(l.key, l.values || []);
  m.body.append(
    h('p', { class: 'hint' }, `Labels are not secret: they help find the ${noun} (lists filter by them). At most 10 values per key.`),
    rows,
    h('button', { type: 'button', onclick: () => addRow().focus() }, 'Add label'));
  const save = h('button', { type: 'button', class: 'primary' }, 'Save labels');
  save.addEventListener('click', async () => {
    save.disabled = true;
    replace(error);
    const labels = [...rows.querySelectorAll('.label-row')].map((r) => ({
      key: r.querySelector('[data-role="label-key"]').value.trim(),
      values: r.querySelector('[data-role="label-values"]').value.split(',').map((v) => v.trim()).filter(Boolean),
    })).filter((l) => l.key || l.values.length);
    try {
      await request('PUT', `${path}/labels`, { body: labels });
      m.close();
      toast(`Saved the labels of ${noun} ${name}`);
    } catch (e) {
      replace(error, e.message);
    } finally {
      save.disabled = false;
    }
  });
  m.foot.append(error, h('button', { type: 'button', onclick: m.close }, 'Cancel'), save);
  (rows.querySelector('input') || save).focus();
}

/**
 * The `$filter` of a label filter typed as `key=value1,value2` (several separated by spaces,
 * all of which must hold); '' for an empty one, null when it cannot be read.
 */
export function labelFilter(text) {
  const parts = text.trim().split(/\s+/).filter(Boolean);
  const quote = (s) => `'${encodeURIComponent(s).replace(/'/g, "''")}'`;
  const clauses = [];
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) return null;
    const values = p.slice(eq + 1).split(',').filter(Boolean);
    if (values.length === 0) return null;
    clauses.push(`Label[${quote(p.slice(0, eq))}] HAS (${values.map(quote).join(', ')})`);
  }
  return clauses.join(' AND ');
}
