// Services: the list, and one service's page: its instances (address,
// labels, zone, health, liveness, heartbeat), the routes for calls to it, its
// destination policy, who may call it (PeerAuthentication, AuthorizationPolicy,
// dry-run ones marked), the filters bound to it and the proxies serving it.
import { get } from '../api.js';
import { ago, badge, clear, errorBox, h, pretty } from '../dom.js';

const q = (ns) => `?namespace=${encodeURIComponent(ns)}`;

async function list(view) {
  const body = h('div');
  view.append(h('h1', 'Services'), body);
  const refresh = async () => {
    try {
      const [{ items: services }, { items: instances }] = await Promise.all([get('/services'), get('/instances')]);
      clear(body, h('table.grid#services-table',
        h('thead', h('tr', ['service', 'ports', 'calls', 'instances (healthy/total)'].map((t) => h('th', t)))),
        h('tbody', services.map((s) => {
          const mine = instances.filter((i) => i.service === s.name && i.namespace === s.namespace);
          return h('tr',
            h('td', h('a', { href: `#/services/${encodeURIComponent(s.name)}/${encodeURIComponent(s.namespace)}` }, `${s.name}.${s.namespace}`)),
            h('td', s.ports.map((p) => `${p.port}/${p.protocol}`).join(', ')),
            h('td', s.dependsOn === undefined ? h('span.muted', 'anything') : s.dependsOn.join(', ') || h('span.muted', 'nothing')),
            h('td', `${mine.filter((i) => i.live && i.health === 'healthy').length}/${mine.length}`),
          );
        })),
      ));
    } catch (err) {
      clear(body, errorBox(err, 'loading services'));
    }
  };
  await refresh();
  return { refresh };
}

function section(title, ...content) {
  return h('section.card', h('h2', title), ...content);
}

function instancesTable(items) {
  if (items.length === 0) return h('p.muted', 'No instances registered.');
  return h('table.grid#instances-table',
    h('thead', h('tr', ['id', 'address', 'labels', 'zone', 'health', 'live', 'TTL', 'last heartbeat'].map((t) => h('th', t)))),
    h('tbody', items.map((i) => h('tr', { dataset: { instance: i.id } },
      h('td', h('code', i.id)),
      h('td', `${i.address}:${i.port}`),
      h('td', Object.entries(i.labels ?? {}).map(([k, v]) => h('span.tag', `${k}=${v}`))),
      h('td', i.zone ?? h('span.muted', '—')),
      h('td', badge(i.health)),
      h('td', i.live ? badge('live', 'healthy') : badge('lapsed', 'down')),
      h('td', i.ttlSeconds ? `${i.ttlSeconds}s` : h('span.muted', 'none (static)')),
      h('td.heartbeat', i.lastHeartbeat ? ago(i.lastHeartbeat) : '—', i.ttlSeconds ? null : h('span.muted', ' (registration; static, no TTL)')),
    ))),
  );
}

function jsonCard(obj) {
  return h('details.json', { open: true }, h('summary', obj.name), h('pre', pretty(obj)));
}

async function detail(view, name, ns) {
  const body = h('div');
  view.append(h('h1', h('a', { href: '#/services' }, 'Services'), ' / ', `${name}.${ns}`), body);
  const refresh = async () => {
    try {
      const [service, { items: instances }, { items: routes }, { items: policies }, { items: bindings }, { items: proxies }, { items: authz }, { items: peerAuth }] = await Promise.all([
        get(`/services/${encodeURIComponent(name)}${q(ns)}`),
        get(`/services/${encodeURIComponent(name)}/instances${q(ns)}`),
        get(`/routes${q(ns)}`),
        get(`/destination-policies${q(ns)}`),
        get(`/filter-bindings${q(ns)}`),
        get('/proxies'),
        get(`/authorization-policies${q(ns)}`),
        get(`/peer-authentications${q(ns)}`),
      ]);
      const mine = (o) => o.service === name || o.service === `${name}.${ns}`;
      const myRoutes = routes.filter(mine);
      const myPolicies = policies.filter(mine);
      const myBindings = bindings.filter(mine);
      const myProxies = proxies.filter((p) => p.service === name && p.namespace === ns);
      const myAuthz = authz.filter(mine);
      // The service's own PeerAuthentication wins over the namespace's (no service).
      const mtls = peerAuth.find(mine) ?? peerAuth.find((p) => p.service === undefined);
      clear(body,
        section('Ports', h('p', service.ports.map((p) => `${p.name ? p.name + ' ' : ''}${p.port}/${p.protocol}`).join(', '),
          ' · calls: ', service.dependsOn === undefined ? 'any service' : service.dependsOn.join(', ') || 'nothing',
          service.healthCheck ? ` · health check ${service.healthCheck.path} every ${service.healthCheck.intervalMs} ms` : '')),
        section(`Instances (${instances.length})`, instancesTable(instances)),
        section(`Routes for calls to ${name} (${myRoutes.length})`, myRoutes.length ? myRoutes.map((r) => h('div',
          h('p', h('strong', r.name), ' ', r.rules.map((rule, i) => h('span.tag', `${rule.name ?? 'rule ' + i}: ${rule.destinations.map((d) => `${d.subset ?? d.service}${d.weight !== undefined ? ' ' + d.weight : ''}`).join(' / ')}`)),
            ' ', h('a', { href: `#/traffic/${encodeURIComponent(r.name)}/${encodeURIComponent(r.namespace)}` }, 'shift traffic')),
          jsonCard(r))) : h('p.muted', 'No route: calls go to every instance.')),
        section(`Destination policy (${myPolicies.length})`, myPolicies.length ? myPolicies.map(jsonCard) : h('p.muted', 'None: round robin, default timeouts.')),
        section(`Authorization (${myAuthz.length})`,
          h('p', 'mutual TLS: ', mtls ? h('strong', mtls.mode) : h('span.muted', 'no PeerAuthentication (plaintext accepted)')),
          myAuthz.length ? h('table.grid#authz-table',
            h('thead', h('tr', ['policy', 'action', 'rules', 'enforced'].map((t) => h('th', t)))),
            h('tbody', myAuthz.map((p) => h('tr',
              h('td', p.name),
              h('td', p.action),
              h('td', String(p.rules.length)),
              // A dry-run policy is evaluated and counted by the proxies, never enforced.
              h('td', p.dryRun ? badge('dry run', 'degraded') : badge('enforced', 'healthy')),
            ))),
          ) : h('p.muted', 'No AuthorizationPolicy: every caller is allowed.')),
        section(`Bound filters (${myBindings.length})`, myBindings.length ? h('table.grid',
          h('thead', h('tr', ['binding', 'filter', 'direction', 'order', 'failure policy', 'config'].map((t) => h('th', t)))),
          h('tbody', myBindings.map((b) => h('tr', h('td', b.name), h('td', b.filter), h('td', b.direction), h('td', String(b.order ?? 0)), h('td', b.failurePolicy ?? 'fail_closed'), h('td', h('code', JSON.stringify(b.config ?? {})))))),
        ) : h('p.muted', 'No filters bound.')),
        section(`Proxies (${myProxies.length})`, myProxies.length ? h('ul', myProxies.map((p) => h('li', badge(p.status), ' ', h('a', { href: `#/proxies/${encodeURIComponent(p.id)}` }, p.id)))) : h('p.muted', 'No proxy connected for this service.')),
      );
    } catch (err) {
      clear(body, errorBox(err, `loading service ${name}`));
    }
  };
  await refresh();
  return { refresh };
}

export function render(view, [name, ns = 'default']) {
  return name ? detail(view, name, ns) : list(view);
}
