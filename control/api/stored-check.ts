// What a data dir holds that this weft build would refuse. Validation grows
// stricter between builds (this one refuses `%` in header values, a Route on
// a tcp-only service, a host name as an instance address...), and objects an
// older build accepted stay stored. Translation then refuses the mesh's
// snapshot and every proxy keeps its last configuration: silent drift. So the
// control plane names each such object at start, with the field and the
// reason, as a write of it now would be answered.
import { isIP } from 'node:net';
import { kindNamed } from '../model/kinds.ts';
import type { ApiDeps } from './deps.ts';
import { operatorObjects } from './desired-state.ts';

/** One line per problem: `Kind/namespace/name.path: message`. */
export function storedStateProblems(deps: Pick<ApiDeps, 'store' | 'checkReferences'>): string[] {
  const out: string[] = [];
  const objects = deps.store.list();
  for (const o of objects) {
    if (o.kind === 'Instance') {
      const address = (o.spec as { address?: unknown }).address;
      if (typeof address === 'string' && isIP(address) === 0) out.push(`Instance/${o.namespace}/${o.name}.address: must be an IPv4 or IPv6 address, not a host name ("${address}")`);
      continue;
    }
    const kind = kindNamed(o.kind);
    if (!kind) continue;
    const checked = kind.validate(o.spec);
    if (!checked.ok) for (const e of checked.errors) out.push(`${o.kind}/${o.namespace}/${o.name}${e.path ? `.${e.path}` : ''}: ${e.message}`);
  }
  for (const e of deps.checkReferences(operatorObjects(objects))) out.push(`${e.kind}/${e.namespace}/${e.name}${e.path ? `.${e.path}` : ''}: ${e.message}`);
  return out;
}
