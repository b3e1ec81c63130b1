// Traffic shifting: for a route with weighted destinations, change the split,
// see exactly what would be pushed (the API's dry run: every proxy's Envoy
// resources before and after), apply it as a new revision and watch the
// affected proxies converge (their ACKed route version changes).
import { api, apiResponse, get } from '../api.js';
import { badge, clear, diffBlock, errorBox, h, writeControl } from '../dom.js';

const q = (ns) => `?namespace=${encodeURIComponent(ns)}`;

function manifestOf(route) {
  const { name, namespace, ...spec } = route;
  return { apiVersion: 'weft.dev/v1', kind: 'Route', metadata: { name, namespace }, spec };
}

const MAX_WEIGHT = 1_000_000;

/**
 * A weight field's value as the API takes it (a whole number in 0..MAX_WEIGHT), or undefined when it is not one:
 * empty, negative, fractional, too big, or not a number at all. An <input type=number> holding what the browser
 * cannot parse ("-", "e", "1e") has value '' and validity.badInput, and Number('') is 0: until 2026-11-30 clearing
 * a field previewed and applied weight 0.
 */
function weightOf(el) {
  if (el.validity.badInput) return undefined;
  const text = el.value.trim();
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_WEIGHT ? n : undefined;
}

function splitEditor(route, ruleIndex, onChange) {
  const rule = route.rules[ruleIndex];
  const inputs = rule.destinations.map((d, i) => h('input.weight', {
    type: 'number', min: 0, max: MAX_WEIGHT, step: 1, value: d.weight ?? 1,
    name: `weight-${ruleIndex}-${i}`, 'aria-label': `weight of ${d.subset ?? d.service}`,
    dataset: { destination: d.subset ?? d.service },
  }));
  const total = () => inputs.reduce((n, el) => n + (Number(el.value) || 0), 0);
  const shares = h('span.shares');
  const update = () => {
    const t = total();
    // A weight the API would refuse (negative, fractional, empty, over the maximum) is said so, not shown as a share:
    // -5 and 10 read "-100% · 200%" until Preview refused them.
    const bad = inputs.find((el) => weightOf(el) === undefined);
    if (bad) clear(shares, h('span.banner.error', `weights are whole numbers, 0 to ${MAX_WEIGHT}: fix ${bad.getAttribute('aria-label')} to preview or apply`));
    else clear(shares, inputs.map((el, i) => `${rule.destinations[i].subset ?? rule.destinations[i].service} ${t ? Math.round((Number(el.value) / t) * 1000) / 10 : 0}%`).join(' · '));
    onChange();
  };
  let slider = null;
  if (inputs.length === 2) {
    // A slider for the common two-way canary: it moves both weights (sum 100).
    const t0 = total() || 100;
    slider = h('input.slider', { type: 'range', min: 0, max: 100, step: 1, value: Math.round((Number(inputs[1].value) / t0) * 100), name: `slider-${ruleIndex}`, 'aria-label': `share of ${rule.destinations[1].subset ?? rule.destinations[1].service}` });
    slider.addEventListener('input', () => {
      inputs[0].value = String(100 - Number(slider.value));
      inputs[1].value = slider.value;
      update();
    });
  }
  for (const el of inputs) el.addEventListener('input', () => {
    if (slider) slider.value = String(Math.round((Number(inputs[1].value) / (total() || 1)) * 100));
    update();
  });
  update();
  const el = h('div.split', { dataset: { rule: String(ruleIndex) } },
    h('h3', `rule ${rule.name ?? ruleIndex}`),
    slider ? h('div.slider-row', h('span', rule.destinations[0].subset ?? rule.destinations[0].service), slider, h('span', rule.destinations[1].subset ?? rule.destinations[1].service)) : null,
    h('div.weights', rule.destinations.map((d, i) => h('label', `${d.service}${d.subset ? ' / ' + d.subset : ''}: `, inputs[i]))),
    h('div', shares),
  );
  // undefined for a weight that is not valid: nothing is previewed or applied while one is.
  return { el, weights: () => inputs.map(weightOf), valid: () => inputs.every((i) => weightOf(i) !== undefined) };
}

function diffView(dry) {
  const changed = dry.diff.proxies.filter((p) => p.resources.length > 0 || p.errors.length > 0);
  if (!dry.changed) return h('div.banner.info#diff-result', 'No change: the route already has this split.');
  return h('div#diff-result',
    h('p', `Would change ${dry.objects.filter((o) => o.action !== 'unchanged').map((o) => `${o.kind}/${o.name} (${o.action})`).join(', ')}; `,
      `${changed.length} proxy configuration(s) affected, at revision ${dry.revision} → ${dry.revision + 1}.`),
    changed.map((p) => h('div.proxy-diff', { dataset: { proxy: p.proxy } },
      h('h4', p.proxy, ' ', p.connected ? badge('connected', 'synced') : badge('not connected: as a new sidecar would get it', 'unknown')),
      p.errors.map((e) => h('div.banner.error', h('code', e.path), ' ', e.message)),
      p.resources.map((r) => h('div', h('div.muted', `${r.type} ${r.name}: ${r.action}`), diffBlock(r.before, r.after))),
    )),
  );
}

/**
 * `route` as read, with `etag` its ETag then: the apply is a PUT with If-Match, so a change someone
 * else made to the route since (a retry policy, another rule) is not silently overwritten with the
 * copy this page holds; the API answers 412 and nothing is stored.
 */
async function editor(view, route, etag) {
  const status = h('div.status#apply-status');
  const preview = h('div.preview');
  const converge = h('div.converge#converge');
  const editors = [];
  // Preview is offered only while every weight is valid, Apply only while they are and differ from the route's
  // (set once the buttons exist).
  let syncButtons = () => {};
  const dirty = () => { clear(preview); syncButtons(); };
  route.rules.forEach((rule, i) => {
    if (rule.destinations.length >= 2) editors.push({ i, ...splitEditor(route, i, dirty) });
  });
  const valid = () => editors.every((e) => e.valid());
  /** The route with the weights as typed; undefined while one is not valid, so nothing invalid is ever sent. */
  const proposed = () => {
    if (!valid()) return undefined;
    const next = structuredClone(route);
    for (const e of editors) e.weights().forEach((w, k) => { next.rules[e.i].destinations[k].weight = w; });
    return next;
  };
  const invalid = `a weight is not a whole number 0 to ${MAX_WEIGHT}`;
  const refuseInvalid = () => clear(status, h('div.banner.error', `Not sent: ${invalid}.`));
  /** After an apply: {revision, reach: proxy -> changed types, held: proxy -> versions before}. */
  let watching = null;
  const previewBtn = h('button#preview', { type: 'button' }, 'Preview diff');
  const applyBtn = writeControl(h('button#apply.primary', { type: 'button' }, 'Apply as new revision'));
  const writable = !applyBtn.disabled;
  syncButtons = () => {
    const ok = valid();
    previewBtn.disabled = !ok;
    previewBtn.title = ok ? '' : invalid;
    if (!writable) return; // a viewer's Apply stays disabled, with writeControl's tooltip
    const same = ok && editors.every((e) => e.weights().every((w, k) => w === (route.rules[e.i].destinations[k].weight ?? 1)));
    applyBtn.disabled = !ok || same;
    applyBtn.title = !ok ? invalid : same ? 'nothing to apply: these are the route’s weights now' : '';
  };
  syncButtons();
  previewBtn.addEventListener('click', async () => {
    const next = proposed();
    if (!next) return refuseInvalid();
    clear(status, 'computing the diff…');
    try {
      const dry = await api('POST', '/apply?dryRun=true', { manifests: [manifestOf(next)] });
      clear(status);
      clear(preview, diffView(dry));
    } catch (err) {
      clear(status, errorBox(err, 'preview'));
    }
  });
  applyBtn.addEventListener('click', async () => {
    const next = proposed();
    if (!next) return refuseInvalid();
    clear(status, 'applying…');
    try {
      // Which connected proxies the change reaches, and in which resource
      // types, from the same dry run as the preview; with what each holds
      // now, that tells when a proxy has taken the change.
      const manifests = [manifestOf(next)];
      const dry = await api('POST', '/apply?dryRun=true', { manifests });
      const reach = new Map(dry.diff.proxies.filter((p) => p.connected && p.resources.length > 0).map((p) => [p.proxy, [...new Set(p.resources.map((r) => r.type))]]));
      const held = new Map((await get('/proxies')).items.map((p) => [p.id, { ...p.versions }]));
      if (!dry.changed) {
        clear(status, h('div.banner.info', `No change (revision ${dry.revision}).`));
        return;
      }
      const written = await apiResponse('PUT', `/routes/${encodeURIComponent(next.name)}${q(next.namespace)}`, next, { 'if-match': etag });
      const revision = Number(written.headers.get('x-weft-revision'));
      etag = written.headers.get('etag');
      clear(status, h('div.banner.ok#applied', `Applied as revision ${revision}.`));
      route = next;
      syncButtons();
      watching = { revision, reach, held };
      await refresh();
    } catch (err) {
      clear(status, errorBox(err, 'apply'), err.code === 'PRECONDITION_FAILED' ? h('p.muted', 'Reload the page to edit the route as it is now.') : null);
    }
  });
  const refresh = async () => {
    if (!watching) return;
    const { items } = await get('/proxies');
    const affected = items.filter((p) => watching.reach.has(p.id));
    const done = (p) => p.status === 'SYNCED' && watching.reach.get(p.id).every((t) => p.versions[t] !== watching.held.get(p.id)?.[t]);
    const converged = affected.filter(done).length;
    clear(converge,
      h('h3', `Revision ${watching.revision}: ${converged} of ${affected.length} affected proxies converged`, converged < affected.length ? h('span.spinner', ' (converging…)') : null),
      h('ul', affected.map((p) => h('li', { dataset: { proxy: p.id } },
        done(p) ? badge('converged', 'synced') : p.status === 'NACKED' || p.status === 'NOT_SENT' || p.status === 'DISCONNECTED' ? badge(p.status) : badge('converging', 'stale'),
        ' ', h('a', { href: `#/proxies/${encodeURIComponent(p.id)}` }, p.id),
        h('span.muted', ` (${watching.reach.get(p.id).join(', ')})`),
        p.status === 'NACKED' ? p.nacks.map((n) => h('div.banner.error', `${n.type}: ${n.message}`)) : null,
        p.status === 'NOT_SENT' ? p.refused.map((e) => h('div.banner.error', `not sent: ${e.path}: ${e.message}`)) : null,
      ))),
    );
  };
  view.append(h('section.card.route-editor', { dataset: { route: `${route.name}.${route.namespace}` } },
    h('h2', `Route ${route.name}`, h('span.muted', ` (calls to ${route.service})`)),
    editors.map((e) => e.el),
    h('div.actions', previewBtn, applyBtn),
    status, preview, converge,
  ));
  return { refresh };
}

export async function render(view, [name, ns = 'default']) {
  view.append(h('h1', 'Traffic shifting'));
  let weighted;
  try {
    const routes = name ? [await get(`/routes/${encodeURIComponent(name)}${q(ns)}`)] : (await get('/routes')).items;
    // Each editable route read on its own, for its ETag (the list has none).
    weighted = await Promise.all(routes
      .filter((r) => r.rules.some((rule) => rule.destinations.length >= 2))
      .map((r) => apiResponse('GET', `/routes/${encodeURIComponent(r.name)}${q(r.namespace)}`)));
  } catch (err) {
    view.append(errorBox(err, 'loading routes'));
    return null;
  }
  if (weighted.length === 0) {
    view.append(h('p.muted', 'No route has a rule with weighted destinations. Add one (e.g. examples/manifests/canary.yaml) to shift traffic here.'));
    return null;
  }
  const pages = [];
  for (const r of weighted) pages.push(await editor(view, r.json, r.headers.get('etag')));
  return { refresh: async () => { for (const p of pages) await p.refresh(); } };
}
