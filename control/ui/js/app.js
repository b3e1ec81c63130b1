// The UI shell: login, the operator's role, hash routing between pages and
// a poll loop. Each page module exports render(view, params) returning an
// optional {refresh(), dispose()}; the shell calls refresh every POLL_MS so
// status, convergence and traffic stay current without a reload.
import { api, session } from './api.js';
import { clear, errorBox, h } from './dom.js';
import * as login from './pages/login.js';
import * as topology from './pages/topology.js';
import * as services from './pages/services.js';
import * as traffic from './pages/traffic.js';
import * as proxies from './pages/proxies.js';
import * as history from './pages/history.js';

const POLL_MS = 2000;
const PAGES = { topology, services, traffic, proxies, history };

const view = document.getElementById('view');
const globalError = document.getElementById('global-error');
let current = null;
let timer = null;

function showGlobalError(err) {
  if (!err) {
    globalError.hidden = true;
    return;
  }
  clear(globalError, errorBox(err).childNodes);
  globalError.hidden = false;
}

async function whoami() {
  try {
    session.operator = await api('GET', '/whoami');
  } catch (err) {
    session.operator = null;
    throw err;
  }
  document.getElementById('who-name').textContent = session.operator.name;
  const role = document.getElementById('who-role');
  role.textContent = session.operator.role;
  role.className = `role r-${session.operator.role}`;
  document.body.dataset.role = session.operator.role;
  document.getElementById('who').hidden = false;
  document.getElementById('nav').hidden = false;
}

/** Pending pushes: proxies not yet SYNCED, shown in the header on every page. */
async function pendingBadge() {
  const el = document.getElementById('pending');
  try {
    const { items } = await api('GET', '/proxies');
    const converging = items.filter((p) => p.status === 'STALE').length;
    const nacked = items.filter((p) => p.status === 'NACKED').length;
    const notSent = items.filter((p) => p.status === 'NOT_SENT').length;
    const parts = [];
    if (converging) parts.push(`${converging} converging`);
    if (nacked) parts.push(`${nacked} NACKed`);
    if (notSent) parts.push(`${notSent} not sent`);
    el.textContent = parts.join(', ');
    el.hidden = parts.length === 0;
    el.className = `pending ${nacked || notSent ? 'bad' : 'busy'}`;
  } catch {
    el.hidden = true; // the page itself shows API errors where they happen
  }
}

/** Goes to a page: through hashchange when the hash changes, directly when it does not. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

let generation = 0;
/** What the login page says first, once: why the session ended (the token was refused). */
let loginNotice = null;

/** Ends the session: forgets the token and who it was, hides the header's operator and the nav. */
function endSession() {
  session.token = null;
  session.operator = null;
  delete document.body.dataset.role;
  document.getElementById('who').hidden = true;
  document.getElementById('nav').hidden = true;
}

// Any call the control plane answers 401 with the session's token (revoked, or unknown to it: a restart with
// another data dir) ends the session on the login page, saying why. Until 2026-11-30 the header kept showing the
// operator and every page said UNAUTHENTICATED until a reload.
session.onRefused = (err) => {
  endSession();
  loginNotice = err;
  go('#/login');
};

async function route() {
  // A newer navigation supersedes this one: each renders into its own
  // container, and only the newest keeps its poll timer.
  const mine = ++generation;
  current?.dispose?.();
  current = null;
  if (timer) clearInterval(timer);
  timer = null;
  showGlobalError(null);
  const container = h('div.page');
  clear(view, container);
  if (!session.token) {
    endSession();
    const notice = loginNotice;
    loginNotice = null;
    current = login.render(container, { onLogin: () => go('#/topology'), notice });
    return;
  }
  if (!session.operator) {
    try {
      await whoami();
    } catch (err) {
      if (mine !== generation) return;
      if (!session.token) return; // refused: onRefused has gone to the login page
      showGlobalError(err);
      return;
    }
  }
  if (mine !== generation) return;
  const [, name = 'topology', ...rest] = (location.hash || '#/topology').split('/');
  const page = PAGES[name] ?? topology;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
  let rendered = null;
  try {
    rendered = (await page.render(container, rest.map(decodeURIComponent))) ?? null;
  } catch (err) {
    container.append(errorBox(err, 'loading the page'));
  }
  if (mine !== generation) return;
  current = rendered;
  pendingBadge();
  timer = setInterval(() => {
    pendingBadge();
    // A refresh still in flight when the page changed (or the session ended) has nothing to say on the next one.
    current?.refresh?.().catch((err) => { if (mine === generation && session.token) showGlobalError(err); });
  }, POLL_MS);
}

document.getElementById('logout').addEventListener('click', () => {
  endSession();
  go('#/login');
});
window.addEventListener('hashchange', route);
route();
