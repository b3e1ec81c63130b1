// History: every revision with actor, time and summary; the difference in
// operator objects between any two revisions; rollback to one (asked to
// confirm first), which the API makes a new revision.
import { api, get } from '../api.js';
import { badge, clear, diffBlock, errorBox, h, writeControl } from '../dom.js';

const keyOf = (o) => `${o.kind}/${o.namespace}/${o.name}`;

/** Operator objects that differ between two states: [{key, action, before, after}] */
export function objectDiff(a, b) {
  const before = new Map(a.map((o) => [keyOf(o), o.spec]));
  const after = new Map(b.map((o) => [keyOf(o), o.spec]));
  const out = [];
  for (const key of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const x = before.get(key), y = after.get(key);
    if (x === undefined) out.push({ key, action: 'added', after: y });
    else if (y === undefined) out.push({ key, action: 'removed', before: x });
    else if (JSON.stringify(x) !== JSON.stringify(y)) out.push({ key, action: 'changed', before: x, after: y });
  }
  return out;
}

// + created, ~ updated, − deleted (a revision written before the store recorded which only says put or delete).
const MARKS = { create: ['+', 'created'], update: ['~', 'updated'], delete: ['−', 'deleted'] };
function changeTag(c) {
  const [mark, word] = MARKS[c.action] ?? (c.op === 'delete' ? MARKS.delete : ['+', 'created or updated']);
  return h('span.tag', { title: `${c.kind} ${c.namespace}/${c.name} ${word}`, dataset: { action: c.action ?? c.op } }, `${mark}${c.kind}/${c.name}`);
}

async function stateAt(n) {
  return n === 0 ? [] : (await get(`/revisions/${n}`)).objects;
}

export async function render(view, [focus]) {
  const compare = h('section.card#compare');
  const confirmBox = h('div#rollback-confirm');
  const status = h('div.status#rollback-status');
  const listEl = h('div');
  const fromSel = h('select#diff-from', { 'aria-label': 'from revision' });
  const toSel = h('select#diff-to', { 'aria-label': 'to revision' });
  const diffBtn = h('button#diff-run', { type: 'button' }, 'Show diff');
  const result = h('div#revision-diff');
  view.append(h('h1', 'History'),
    h('section.card', h('h2', 'Compare two revisions'), h('div.actions', 'from ', fromSel, ' to ', toSel, diffBtn), result),
    status, confirmBox, listEl);

  diffBtn.addEventListener('click', async () => {
    const a = Number(fromSel.value), b = Number(toSel.value);
    clear(result, 'loading…');
    try {
      const [x, y] = await Promise.all([stateAt(a), stateAt(b)]);
      const d = objectDiff(x, y);
      clear(result, d.length === 0 ? h('p.muted', `Revisions ${a} and ${b} have the same services, routes, policies and bindings.`) :
        d.map((c) => h('div.object-diff', { dataset: { object: c.key } }, h('h4', `${c.key} `, badge(c.action, c.action === 'removed' ? 'down' : c.action === 'added' ? 'healthy' : 'stale')), diffBlock(c.before, c.after))));
    } catch (err) {
      clear(result, errorBox(err, 'diff'));
    }
  });

  const askRollback = (rev, current) => {
    clear(status);
    const confirmBtn = writeControl(h('button#rollback-yes.danger', { type: 'button' }, `Roll back to revision ${rev.revision}`));
    const cancelBtn = h('button#rollback-no', { type: 'button', onclick: () => clear(confirmBox) }, 'Cancel');
    confirmBtn.addEventListener('click', async () => {
      confirmBtn.disabled = true;
      clear(status, 'rolling back…');
      try {
        const r = await api('POST', `/revisions/${rev.revision}/rollback`);
        clear(confirmBox);
        clear(status, h('div.banner.ok#rollback-done', r.changed
          ? `Rolled back to revision ${rev.revision} as revision ${r.revision}: ${r.objects.map((o) => `${o.kind}/${o.name} ${o.action}`).join(', ')}. Proxies converging: see Proxies.`
          : `Nothing to roll back: the state already equals revision ${rev.revision}.`));
        await refresh();
      } catch (err) {
        confirmBtn.disabled = false;
        clear(status, errorBox(err, 'rollback'));
      }
    });
    clear(confirmBox, h('div.card.confirm', { role: 'dialog' },
      h('p', h('strong', `Roll back to revision ${rev.revision}?`), ` Services, routes, destination policies, filter bindings and identity policies (peer authentication, authorization) return to their state as of revision ${rev.revision} (“${rev.summary}”), committed as a new revision after ${current}. Instances and uploaded filter modules are not touched. The rollback can itself be rolled back.`),
      h('div.actions', confirmBtn, cancelBtn)));
    confirmBox.scrollIntoView({ block: 'nearest' });
  };

  let known = -1;
  const refresh = async () => {
    let data;
    try {
      data = await get('/revisions?limit=1000');
    } catch (err) {
      clear(listEl, errorBox(err, 'loading history'));
      return;
    }
    if (data.current === known) return;
    known = data.current;
    const options = (sel, value) => {
      const keep = sel.value;
      clear(sel, [h('option', { value: '0' }, '0 (empty)'), ...[...data.items].reverse().map((r) => h('option', { value: String(r.revision) }, `${r.revision} · ${r.summary}`.slice(0, 80)))]);
      sel.value = keep || String(value);
    };
    options(fromSel, Math.max(0, (focus ? Number(focus) : data.current) - 1));
    options(toSel, focus ? Number(focus) : data.current);
    clear(listEl, h('table.grid#history-table',
      h('thead', h('tr', ['revision', 'time', 'actor', 'summary', 'changes', ''].map((t) => h('th', t)))),
      h('tbody', data.items.map((r) => h('tr', { dataset: { revision: String(r.revision) }, class: String(r.revision) === focus ? 'focus' : '' },
        h('td', String(r.revision), r.revision === data.current ? h('span.muted', ' (current)') : null),
        h('td', new Date(r.time).toLocaleString()),
        h('td', r.actor),
        h('td', r.summary),
        h('td', r.changes.map(changeTag)),
        h('td', r.revision === data.current ? null : writeControl(h('button.rollback', { type: 'button', onclick: () => askRollback(r, data.current) }, 'Roll back to this'))),
      ))),
    ));
  };
  await refresh();
  return { refresh };
}
