// Proxies: every proxy's sync status (SYNCED / STALE / NACKED /
// DISCONNECTED), ACKed versions per type, and for a NACK the full error and
// the revision that caused it; one proxy's current resources as JSON, and
// whether what it runs (its own config dump) is what the control plane means.
import { get, session, stream } from '../api.js';
import { ago, badge, clear, diffBlock, errorBox, h, pretty } from '../dom.js';

const TYPES = ['listeners', 'routes', 'clusters', 'endpoints', 'extension-configs'];

/** The revision a NACK rejected: the API's when it says, else the newest revision made before the NACK. */
export function nackRevision(nack, revisions) {
  if (nack.revision !== undefined) return { revision: nack.revision, inferred: false };
  const t = Date.parse(nack.time ?? '');
  const before = revisions.filter((r) => Date.parse(r.time) <= t).sort((a, b) => b.revision - a.revision)[0];
  return before ? { revision: before.revision, inferred: true } : undefined;
}

function nackList(p, revisions) {
  return p.nacks.map((n) => {
    const rev = nackRevision(n, revisions);
    return h('div.banner.error.nack', { dataset: { type: n.type } },
      h('strong', `NACK of ${n.type}`), rev ? h('span', ' · revision ', h('a', { href: `#/history/${rev.revision}` }, String(rev.revision)), rev.inferred ? h('span.muted', ' (in force when it was rejected)') : null) : null,
      n.time ? h('span.muted', ` · ${ago(n.time)}`) : null,
      n.version ? h('span.muted', ` · rejected version ${n.version}`) : null,
      h('pre.nack-message', n.message),
    );
  });
}

/** Why the control plane builds this proxy nothing new (status NOT_SENT). */
function refusedList(p) {
  return (p.refused ?? []).map((e) =>
    h('div.banner.error.refused',
      h('strong', "Not sent: the control plane refuses this proxy's config"), h('span', ' · revision ', h('a', { href: `#/history/${e.revision}` }, String(e.revision))),
      h('pre.nack-message', `${e.path}: ${e.message}`),
    ));
}

function versions(p) {
  return TYPES.map((t) => h('td.version', { title: p.versions[t] ?? '' }, p.versions[t] ? p.versions[t].slice(0, 10) : h('span.muted', '—')));
}

async function list(view) {
  const body = h('div');
  view.append(h('h1', 'Proxies'), body);
  const refresh = async () => {
    try {
      const [{ items }, { items: revisions }] = await Promise.all([get('/proxies'), get('/revisions?limit=1000')]);
      const order = { NOT_SENT: 0, NACKED: 1, STALE: 2, SYNCED: 3, DISCONNECTED: 4 };
      items.sort((a, b) => order[a.status] - order[b.status] || a.id.localeCompare(b.id));
      clear(body,
        h('p.muted', `${items.length} proxies · ${items.filter((p) => p.status === 'SYNCED').length} synced · ${items.filter((p) => p.status === 'STALE').length} converging · ${items.filter((p) => p.status === 'NACKED').length} NACKed · ${items.filter((p) => p.status === 'NOT_SENT').length} not sent · ${items.filter((p) => p.status === 'DISCONNECTED').length} disconnected`),
        items.length === 0 ? h('p.muted', 'No proxy has connected yet.') : h('table.grid#proxies-table',
          h('thead', h('tr', ['proxy', 'service', 'status', 'stream', 'connected', 'last ACK', 'last change ACKed in', ...TYPES].map((t) => h('th', t)))),
          h('tbody', items.flatMap((p) => [
            h('tr', { dataset: { proxy: p.id, status: p.status } },
              h('td', h('a', { href: `#/proxies/${encodeURIComponent(p.id)}` }, p.id)),
              h('td', `${p.service}.${p.namespace}`),
              h('td', badge(p.status)),
              h('td', `${p.kind} / ${p.stream ?? '—'}`),
              h('td', ago(p.connectedSince)),
              h('td', p.lastAckAt ? ago(p.lastAckAt) : '—'),
              h('td', p.convergenceMs !== undefined ? `${p.convergenceMs} ms` : '—'),
              ...versions(p),
            ),
            p.nacks.length || p.refused?.length ? h('tr.nack-row', h('td', { colSpan: 7 + TYPES.length }, refusedList(p), nackList(p, revisions))) : null,
          ])),
        ),
      );
    } catch (err) {
      clear(body, errorBox(err, 'loading proxies'));
    }
  };
  await refresh();
  return { refresh };
}

const EXPLAIN = {
  WARMING: 'held, not active yet (a cluster waiting for endpoints, a listener for its routes)',
  PENDING: 'a newer version is still to be pushed or ACKed',
  MISSING: 'the proxy does not hold it (not pushed yet, or never requested: a listener or cluster naming it was refused)',
  EXTRA: 'the proxy holds it; the control plane no longer sends it',
  DIFFERS: 'the proxy runs something the control plane never sent it',
};

/** GET /proxies/{id}/sync as a card: per-type counts, then each resource not SYNCED with why and a diff. */
function syncReport(sync) {
  const states = (rs) => {
    const counts = {};
    for (const r of rs) counts[r.state] = (counts[r.state] ?? 0) + 1;
    return Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([s, n]) => `${n} ${s}`).join(', ');
  };
  const off = sync.resources.filter((r) => r.state !== 'SYNCED');
  return [
    h('p', badge(sync.inSync ? 'IN SYNC' : 'OUT OF SYNC', sync.inSync ? 'synced' : 'nacked'), ' ', h('span.muted', `read from ${sync.source}`)),
    h('table.grid', h('thead', h('tr', ['type', 'resources', 'status'].map((t) => h('th', t)))),
      h('tbody', TYPES.map((t) => {
        const of = sync.resources.filter((r) => r.type === t);
        return h('tr', { dataset: { type: t } }, h('td', t), h('td', String(of.length)), h('td', of.length === 0 ? h('span.muted', '—') : of.every((r) => r.state === 'SYNCED') ? badge('SYNCED') : states(of)));
      }))),
    ...off.map((r) => h('div.sync-item', { dataset: { type: r.type, name: r.name, state: r.state } },
      h('p', badge(r.state, r.state === 'WARMING' || r.state === 'PENDING' ? 'stale' : 'nacked'), ' ', h('code', `${r.type}/${r.name}`), ' ',
        r.state === 'NACKED'
          ? h('span', `refused${r.error.version ? ` version ${r.error.version}` : ''}${r.error.time ? ` ${ago(r.error.time)}` : ''}; ${r.runningVersion ? `serving version ${r.runningVersion}` : 'serving nothing for it'}`)
          : h('span.muted', EXPLAIN[r.state])),
      r.error ? h('pre.nack-message', r.error.details) : null,
      r.desired !== undefined || r.running !== undefined ? h('div', h('span.muted', '- control plane, + proxy'), diffBlock(r.desired, r.running)) : null,
    )),
  ];
}

/** "Live requests": the proxy's tap (admin only), newest first, the last 50 kept. */
function liveRequests(id) {
  const rows = h('tbody');
  const status = h('span.muted', 'not watching');
  const filter = h('select#tap-status', ['', '2xx', '4xx', '5xx'].map((v) => h('option', { value: v }, v || 'any status')));
  let abort;
  const button = h('button#tap-toggle', { type: 'button' }, 'Watch');
  const stop = () => {
    abort?.abort();
    abort = undefined;
    button.textContent = 'Watch';
    status.textContent = 'stopped';
  };
  button.onclick = async () => {
    if (abort) return stop();
    abort = new AbortController();
    button.textContent = 'Stop';
    status.textContent = 'watching…';
    clear(rows);
    const q = filter.value ? `?status=${filter.value}` : '';
    try {
      await stream(`/proxies/${encodeURIComponent(id)}/tap${q}`, (e) => {
        rows.prepend(h('tr', { dataset: { status: String(e.response_code) } },
          h('td', new Date(e.start_time).toLocaleTimeString()), h('td', e.listener), h('td', e.method),
          h('td', h('code', `${e.authority}${e.path}`)), h('td', badge(String(e.response_code), e.response_code >= 500 ? 'nacked' : e.response_code >= 400 ? 'stale' : 'synced')),
          h('td', e.response_flags), h('td', `${e.duration_ms} ms`), h('td', e.upstream_host || '—')));
        while (rows.children.length > 50) rows.lastChild.remove();
      }, abort.signal);
      if (abort) stop();
    } catch (err) {
      stop();
      clear(status, errorBox(err, 'watching'));
    }
  };
  // Live requests show paths and headers: the API gives them to admins only.
  if (session.operator && session.operator.role !== 'admin') {
    button.disabled = true;
    button.title = `admin only: ${session.operator.name} has role ${session.operator.role}`;
  }
  const card = h('section.card#proxy-tap',
    h('h2', 'Live requests ', filter, ' ', button, ' ', status),
    h('table.grid', h('thead', h('tr', ['time', 'listener', 'method', 'request', 'status', 'flags', 'duration', 'upstream'].map((t) => h('th', t)))), rows),
  );
  return { card, stop };
}

async function detail(view, id) {
  const head = h('div');
  const config = h('div#proxy-config');
  let type = 'routes';
  const tabs = h('div.tabs', TYPES.map((t) => h('button', { type: 'button', dataset: { type: t }, onclick: () => { type = t; loadConfig(); } }, t)));
  const sync = h('div#proxy-sync');
  const check = async () => {
    clear(sync, h('p.muted', 'reading the proxy\'s config dump…'));
    try {
      clear(sync, ...syncReport(await get(`/proxies/${encodeURIComponent(id)}/sync`)));
    } catch (err) {
      clear(sync, errorBox(err, 'comparing with the proxy'));
    }
  };
  const live = liveRequests(id);
  // leaving the page ends the tap
  window.addEventListener('hashchange', live.stop, { once: true });
  view.append(
    h('h1', h('a', { href: '#/proxies' }, 'Proxies'), ' / ', id),
    head,
    h('section.card', h('h2', 'Running on the proxy ', h('button#check-sync', { type: 'button', onclick: check }, 'Check again')), sync),
    live.card,
    h('section.card', h('h2', 'Current resources (as ACKed)'), tabs, config),
  );
  const loadConfig = async () => {
    for (const b of tabs.children) b.classList.toggle('active', b.dataset.type === type);
    try {
      const res = await get(`/proxies/${encodeURIComponent(id)}/config?type=${type}`);
      const items = res[type];
      clear(config, items.length === 0 ? h('p.muted', `No ${type}.`) : items.map((r) => h('details.json', { open: items.length <= 3 }, h('summary', r.name), h('pre', pretty(r.value)))));
    } catch (err) {
      clear(config, errorBox(err, `loading ${type}`));
    }
  };
  const refresh = async () => {
    try {
      const [p, { items: revisions }] = await Promise.all([get(`/proxies/${encodeURIComponent(id)}`), get('/revisions?limit=1000')]);
      clear(head, h('section.card#proxy-status',
        h('p', badge(p.status), ` ${p.service}.${p.namespace} · ${p.kind} · ${p.stream ?? ''} stream · connected ${ago(p.connectedSince)} · last ACK ${p.lastAckAt ? ago(p.lastAckAt) : 'never'}`, p.convergenceMs !== undefined ? ` · last change ACKed ${p.convergenceMs} ms after commit` : ''),
        h('table.grid', h('thead', h('tr', TYPES.map((t) => h('th', t)))), h('tbody', h('tr', versions(p)))),
        nackList(p, revisions),
      ));
    } catch (err) {
      clear(head, errorBox(err, `loading proxy ${id}`));
    }
  };
  await Promise.all([refresh(), loadConfig(), check()]);
  return { refresh };
}

export function render(view, [id]) {
  return id ? detail(view, id) : list(view);
}
