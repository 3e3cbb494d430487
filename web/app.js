// The Destinations editor's entry: the views (hash routes #/destinations, #/fragments,
// #/certificates, #/transfer), the level switch and the session's sign-in and sign-out.

import { signedIn, signOut, onSession, sessionLabel } from './api.js';
import { signInView } from './signin.js';
import { listView } from './entities.js';
import { certificatesView } from './certificates.js';
import { transferView } from './transfer.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const sessionBar = document.getElementById('session');
const levelSelect = document.getElementById('level');
const VIEWS = ['destinations', 'fragments', 'certificates', 'transfer'];

function currentView() {
  const v = location.hash.replace(/^#\/?/, '').split('?')[0];
  return VIEWS.includes(v) ? v : 'destinations';
}

async function show() {
  if (!signedIn()) {
    nav.hidden = true;
    sessionBar.hidden = true;
    signInView(main, show.reason);
    show.reason = null;
    return;
  }
  nav.hidden = false;
  sessionBar.hidden = false;
  document.getElementById('who').textContent = sessionLabel();
  const view = currentView();
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const level = levelSelect.value;
  document.title = `Signpost · ${view[0].toUpperCase()}${view.slice(1)}`;
  if (view === 'destinations') await listView(main, 'destination', level);
  else if (view === 'fragments') await listView(main, 'fragment', level);
  else if (view === 'certificates') await certificatesView(main, level);
  else transferView(main, level);
}

onSession((on, reason) => {
  if (!on) show.reason = reason || null;
  show();
});
window.addEventListener('hashchange', () => { show(); main.focus(); });
levelSelect.addEventListener('change', show);
document.getElementById('signout').addEventListener('click', () => signOut());
show();
