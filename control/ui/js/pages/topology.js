// Topology: services as nodes (coloured by health) and who-calls-whom edges,
// laid out left to right by call depth, with each service's request rate,
// error rate and p99 from its proxies' stats; a table repeats the figures.
import { get } from '../api.js';
import { clear, errorBox, fmtNum, h } from '../dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 190, H = 74, GAP_X = 90, GAP_Y = 30, PAD = 20;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Column = longest call chain reaching the node (callers left of callees); cycles are cut. */
export function layers(nodes, edges) {
  const depth = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let moved = false;
    for (const e of edges) {
      if (e.from === e.to || !depth.has(e.from) || !depth.has(e.to)) continue;
      const d = depth.get(e.from) + 1;
      if (d > depth.get(e.to) && d < nodes.length) { depth.set(e.to, d); moved = true; }
    }
    if (!moved) break;
  }
  return depth;
}

function graph(topo) {
  const depth = layers(topo.nodes, topo.edges);
  const columns = [];
  for (const n of topo.nodes) (columns[depth.get(n.id)] ??= []).push(n);
  const pos = new Map();
  columns.forEach((col, c) => col.forEach((n, r) => pos.set(n.id, { x: PAD + c * (W + GAP_X), y: PAD + r * (H + GAP_Y) })));
  const width = PAD * 2 + Math.max(1, columns.length) * (W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...columns.map((c) => c?.length ?? 0)) * (H + GAP_Y) - GAP_Y;
  const svg = s('svg', { class: 'topology', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'service topology' });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' }, s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }))));
  for (const e of topo.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const g = s('g', { class: `edge${e.observed ? ' observed' : ''}${e.declared ? ' declared' : ' undeclared'}`, 'data-edge': `${e.from}>${e.to}` });
    g.append(s('path', { d: `M ${x1} ${y1} C ${x1 + GAP_X / 2} ${y1}, ${x2 - GAP_X / 2} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#arrow)' }));
    if (e.observed) g.append(s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, `${fmtNum(e.requestsPerSecond)} rps`));
    svg.append(g);
  }
  for (const n of topo.nodes) {
    const p = pos.get(n.id);
    const a = s('a', { href: `#/services/${encodeURIComponent(n.name)}/${encodeURIComponent(n.namespace)}`, class: `node h-${n.health}`, 'data-service': n.id });
    a.append(s('title', {}, `${n.id}: ${n.health}${n.reasons.length ? ' (' + n.reasons.join('; ') + ')' : ''}`));
    a.append(s('rect', { x: p.x, y: p.y, width: W, height: H, rx: 10 }));
    a.append(s('text', { x: p.x + 12, y: p.y + 22, class: 'name' }, n.name));
    a.append(s('text', { x: p.x + W - 12, y: p.y + 22, class: 'health', 'text-anchor': 'end' }, n.health));
    const st = n.stats;
    a.append(s('text', { x: p.x + 12, y: p.y + 44, class: 'figures' }, st ? `${fmtNum(st.requestsPerSecond)} rps · ${fmtNum(st.errorRate * 100)}% err` : 'no stats'));
    a.append(s('text', { x: p.x + 12, y: p.y + 62, class: 'figures' }, st ? `p99 ${st.p99Ms === null ? '—' : st.p99Ms + ' ms'} · ${n.instances.healthy}/${n.instances.total} up` : `${n.instances.healthy}/${n.instances.total} instances up`));
    svg.append(a);
  }
  return svg;
}

function table(topo) {
  return h('table.grid#topology-table',
    h('thead', h('tr', ['service', 'health', 'instances up', 'proxies synced', 'requests/s', 'error rate', 'p99', 'window'].map((t) => h('th', t)))),
    h('tbody', topo.nodes.map((n) => h('tr', { dataset: { service: n.id } },
      h('td', h('a', { href: `#/services/${encodeURIComponent(n.name)}/${encodeURIComponent(n.namespace)}` }, n.id)),
      h('td', h(`span.badge.b-${n.health}`, n.health), n.reasons.length ? h('div.muted', n.reasons.join('; ')) : null),
      h('td', `${n.instances.healthy}/${n.instances.total}`),
      h('td', `${n.proxies.synced}/${n.proxies.total}${n.proxies.nacked ? ` (${n.proxies.nacked} NACKed)` : ''}`),
      h('td.rps', n.stats ? fmtNum(n.stats.requestsPerSecond) : '—'),
      h('td.err', n.stats ? `${fmtNum(n.stats.errorRate * 100)}%` : '—'),
      h('td.p99', n.stats?.p99Ms != null ? `${n.stats.p99Ms} ms` : '—'),
      h('td.muted', n.stats ? `${fmtNum(n.stats.windowSeconds)} s` : ''),
    ))),
  );
}

export async function render(view) {
  const body = h('div.topology-body');
  view.append(
    h('h1', 'Topology'),
    h('p.muted', 'Services and who calls whom: solid edges were declared (dependsOn, routes), highlighted edges carry observed traffic. Figures come from each service\'s proxies\' /stats/prometheus, over the interval since the previous refresh.'),
    body,
  );
  const refresh = async () => {
    let topo;
    try {
      topo = await get('/topology');
    } catch (err) {
      clear(body, errorBox(err, 'loading the topology'));
      return;
    }
    clear(body,
      h('div.legend', ['healthy', 'degraded', 'down', 'unknown'].map((k) => h(`span.badge.b-${k}`, k)), h('span.muted', ` revision ${topo.revision} · ${new Date(topo.time).toLocaleTimeString()}`)),
      h('div.graph-wrap', graph(topo)),
      topo.scrapeErrors.length ? h('div.banner.warn', h('strong', 'stats unavailable: '), topo.scrapeErrors.map((e) => h('div', `${e.proxy}: ${e.message}`))) : null,
      table(topo),
    );
  };
  await refresh();
  return { refresh };
}
