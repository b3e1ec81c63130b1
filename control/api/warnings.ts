// Warnings: configuration that is valid, that every proxy takes, and that will
// still hurt, said when it is applied (istioctl analyze's and Kiali's
// validations, in the answer to the write itself). They refuse nothing: a
// subset whose instances are about to be deployed is a normal step of a
// rollout. The ops review applied a 50/50 split to a subset with no instance
// and retries on a POST-only route; both went through with `errors: []`, and
// half the traffic then failed 503 UH.
import type { Instance, MeshModel, Route } from '../model/types.ts';
import { resolveServiceRef } from '../model/references.ts';
import type { Change } from './deps.ts';
import { joinPath, type FieldError } from './errors.ts';

/** retry_on conditions under which the app may already have acted on the request. */
const AFTER_THE_APP = new Set(['5xx', 'gateway-error', 'reset', 'retriable-4xx', 'retriable-status-codes', 'retriable-headers']);
const NOT_IDEMPOTENT = new Set(['POST', 'PATCH']);

const hostOf = (s: { name: string; namespace: string }) => `${s.name}.${s.namespace}`;

function healthyInstances(model: MeshModel, host: string, labels?: Record<string, string>): Instance[] {
  return model.instances.filter(
    (i) => hostOf({ name: i.service, namespace: i.namespace }) === host && i.health === 'healthy' && (!labels || Object.entries(labels).every(([k, v]) => i.labels[k] === v)),
  );
}

function percent(weight: number, total: number): string {
  return `${Math.round((weight / total) * 1000) / 10}%`;
}

/** Warnings about the Routes `changes` puts, in the state `model` (after the change); paths as `pathOf` places each change. */
export function configWarnings(model: MeshModel, changes: Change[], pathOf: (c: Change) => string): FieldError[] {
  const out: FieldError[] = [];
  for (const change of changes) {
    if (change.op !== 'put' || change.kind !== 'Route') continue;
    const route = model.routes.find((r) => r.name === change.name && r.namespace === change.namespace);
    if (!route) continue;
    routeWarnings(model, route, (path, message) => out.push({ path: joinPath(pathOf(change), path), message }));
  }
  return out;
}

function routeWarnings(model: MeshModel, route: Route, warn: (path: string, message: string) => void): void {
  route.rules.forEach((rule, i) => {
    const total = rule.destinations.reduce((n, d) => n + d.weight, 0);
    rule.destinations.forEach((d, j) => {
      if (d.weight === 0) return;
      const host = hostOf(resolveServiceRef(d.service, route.namespace));
      const share = total > 0 && d.weight < total ? ` its ${percent(d.weight, total)} of the rule's traffic` : ' the rule\'s traffic';
      if (d.subset === undefined) {
        if (healthyInstances(model, host).length === 0) warn(`rules[${i}].destinations[${j}].service`, `${host} has no healthy instance registered:${share} gets 503 no healthy upstream (UH) until one registers`);
        return;
      }
      const policy = model.destinationPolicies.find((p) => hostOf(resolveServiceRef(p.service, p.namespace)) === host);
      const subset = policy?.subsets?.find((s) => s.name === d.subset);
      if (!subset) return; // a reference error, refused before warnings are looked for
      if (healthyInstances(model, host, subset.labels).length === 0) {
        const labels = Object.entries(subset.labels).map(([k, v]) => `${k}=${v}`).join(',');
        warn(`rules[${i}].destinations[${j}].subset`, `subset "${d.subset}" of ${host} (${labels}) matches no healthy instance:${share} gets 503 no healthy upstream (UH) until one registers`);
      }
    });
    const retryOn = rule.retries && rule.retries.attempts > 0 ? rule.retries.retryOn.filter((c) => AFTER_THE_APP.has(c)) : [];
    const methods = (rule.match ?? []).map((m) => m.method);
    if (retryOn.length > 0 && methods.length > 0 && methods.every((m) => m !== undefined && NOT_IDEMPOTENT.has(m))) {
      warn(
        `rules[${i}].retries.retryOn`,
        `retries ${[...new Set(methods)].join(' and ')} requests on ${retryOn.join(', ')}: the app may already have acted on a request that is sent again (retry requests that are not idempotent only on connect-failure and refused-stream)`,
      );
    }
  });
}
