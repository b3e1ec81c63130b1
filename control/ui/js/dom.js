// Small DOM and formatting helpers: h() builds elements, errorBox() shows an
// API error with its field paths, lineDiff() renders a before/after diff.
import { session } from './api.js';

/** h('div.card#x', {onclick, title}, child...) -> HTMLElement */
export function h(spec, attrs = {}, ...children) {
  const [, tag = 'div', rest = ''] = /^([a-z0-9]+)?(.*)$/i.exec(spec);
  const el = document.createElement(tag);
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs === null || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An error as the operator should see it: code, message, every field path. */
export function errorBox(err, what) {
  const details = err.details ?? [];
  return h('div.banner.error', { role: 'alert' },
    h('strong', `${what ? what + ' failed: ' : ''}${err.code ?? 'ERROR'}`), ' ', err.message,
    details.length > 1 || (details.length === 1 && !err.message.includes(details[0].path))
      ? h('ul.details', details.map((d) => h('li', h('code', d.path || '(root)'), ' ', d.message)))
      : null,
  );
}

export function badge(text, kind = text) {
  return h(`span.badge.b-${String(kind).toLowerCase()}`, text);
}

export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s ago`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m ago`;
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** Line diff (LCS) of two texts: [{op: ' '|'+'|'-', line}] */
export function diffLines(a, b) {
  const x = a === undefined ? [] : a.split('\n');
  const y = b === undefined ? [] : b.split('\n');
  const n = x.length, m = y.length;
  // Objects here are a few hundred lines at most; O(n*m) is fine.
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: ' ', line: x[i] }); i++; j++; }
    else if (dp[i + 1][j] >= dp[i][j + 1]) out.push({ op: '-', line: x[i++] });
    else out.push({ op: '+', line: y[j++] });
  }
  while (i < n) out.push({ op: '-', line: x[i++] });
  while (j < m) out.push({ op: '+', line: y[j++] });
  return out;
}

/** A diff block; unchanged runs longer than 2*context collapse to "…". */
export function diffBlock(before, after, context = 3) {
  const lines = diffLines(before === undefined ? undefined : pretty(before), after === undefined ? undefined : pretty(after));
  const keep = lines.map(() => false);
  lines.forEach((l, i) => {
    if (l.op === ' ') return;
    for (let k = Math.max(0, i - context); k <= Math.min(lines.length - 1, i + context); k++) keep[k] = true;
  });
  const pre = h('pre.diff');
  let skipped = false;
  lines.forEach((l, i) => {
    if (!keep[i]) {
      if (!skipped) pre.append(h('span.skip', '  …\n'));
      skipped = true;
      return;
    }
    skipped = false;
    pre.append(h(`span.${l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'ctx'}`, `${l.op} ${l.line}\n`));
  });
  return pre;
}

export function fmtNum(n, digits = 1) {
  return n === null || n === undefined ? '—' : Number(n).toFixed(digits);
}

/** A control that changes the mesh: disabled for viewers, with the reason (the API refuses them anyway). */
export function writeControl(el) {
  el.dataset.write = '';
  if (!session.operator?.canWrite) {
    el.disabled = true;
    el.title = `read-only: ${session.operator?.name ?? 'this token'} has role ${session.operator?.role ?? 'unknown'}`;
  }
  return el;
}
