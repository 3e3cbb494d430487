// Small DOM helpers: element building without innerHTML (so no markup from data is ever
// parsed), dialogs, toasts and file reading.

let ids = 0;
/** A fresh id for label/control pairs. */
export function uid(prefix = 'f') { ids += 1; return `${prefix}-${ids}`; }

/**
 * h('button', {class: 'primary', onclick: fn}, 'Save'): an element with attributes, event
 * handlers (on*), and children (strings become text nodes; null and false are skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) { el.replaceChildren(); append(el, children); return el; }

/** A labelled control: {wrap, input, error}. `control` is an input, select or textarea. */
export function field(labelText, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const error = h('div', { class: 'error', id: `${id}-error` });
  control.setAttribute('aria-describedby', `${id}-error`);
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, labelText), control,
    hint ? h('div', { class: 'hint' }, hint) : null, error);
  return { wrap, input: control, error };
}

/** A select with its options ([value, label] pairs or strings). */
export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map((o) => {
    const [v, l] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, l);
  }));
}

/** Shows a short message at the bottom right; `kind` 'bad' for failures. */
export function toast(message, kind = 'ok') {
  const t = h('div', { class: `toast ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, message);
  const box = document.getElementById('toasts');
  box.append(t);
  // The latest few only: a burst of actions does not bury the page.
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'bad' ? 8000 : 4000);
}

/**
 * A modal dialog: {dialog, body, foot, close}. `side` makes it a panel on the right.
 * Escape closes it (the browser does); it is removed from the page when closed.
 */
export function modal(title, { side = false, onclose } = {}) {
  const titleId = uid('dlg');
  const body = h('div', { class: 'body' });
  const foot = h('div', { class: 'foot' });
  const dialog = h('dialog', { class: side ? 'side' : '', 'aria-labelledby': titleId });
  const close = () => dialog.close();
  dialog.append(h('div', { class: 'head' }, h('h2', { id: titleId }, title),
    h('button', { type: 'button', 'aria-label': 'Close dialog', onclick: close }, '✕')), body, foot);
  dialog.addEventListener('close', () => { dialog.remove(); if (onclose) onclose(); });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, foot, close };
}

/** Asks for confirmation; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel = 'Delete') {
  return new Promise((resolve) => {
    let answer = false;
    const m = modal(title, { onclose: () => resolve(answer) });
    m.body.append(h('p', {}, text));
    const yes = h('button', { type: 'button', class: 'danger', onclick: () => { answer = true; m.close(); } }, confirmLabel);
    m.foot.append(h('button', { type: 'button', onclick: m.close }, 'Cancel'), yes);
    yes.focus();
  });
}

/** Reads a File as base64 (the API's `Content`). */
export function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onerror = () => reject(new Error(`Cannot read ${file.name}`));
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.readAsDataURL(file);
  });
}

/** Offers text as a file download. */
export function download(filename, text, type = 'application/json') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A drop zone that also opens a file picker: calls `onfile(File)`. */
export function dropZone(text, accept, onfile) {
  const input = h('input', { type: 'file', accept, hidden: true, 'aria-label': text });
  input.addEventListener('change', () => {
    const f = input.files[0];
    // Cleared, so that choosing the same file again is a change too.
    input.value = '';
    if (f) onfile(f);
  });
  const zone = h('div', { class: 'drop' }, text, ' ',
    h('button', { type: 'button', onclick: () => input.click() }, 'Choose a file…'), input);
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (f) onfile(f);
  });
  return { zone, input };
}
