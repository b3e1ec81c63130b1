// Reads a golden case's input.yaml ({model, proxy, options?, expectErrors?})
// and fills the defaults the registry, store and xDS server would fill, so
// the cases stay short and say only what they are about.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type {
  AuthorizationPolicy, DestinationPolicy, FilterBinding, FilterModule, Instance, MeshModel, PeerAuthentication, ProxyRef, Route, Service,
} from '../../control/model/types.ts';
import type { SecretMaterial, TranslateOptions } from '../../control/translate/index.ts';

export interface GoldenCase {
  model: MeshModel;
  proxy: ProxyRef;
  options: TranslateOptions;
  expectErrors: boolean;
  /** Workload certificate material: the case also checks the SDS Secrets built from it. */
  secrets?: SecretMaterial;
}

type Partial2<T> = { [K in keyof T]?: T[K] };
interface RawCase {
  model?: {
    revision?: number;
    services?: Partial2<Service>[];
    instances?: Partial2<Instance>[];
    routes?: Partial2<Route>[];
    destinationPolicies?: Partial2<DestinationPolicy>[];
    filterBindings?: Partial2<FilterBinding>[];
    filterModules?: Partial2<FilterModule>[];
    peerAuthentications?: Partial2<PeerAuthentication>[];
    authorizationPolicies?: Partial2<AuthorizationPolicy>[];
  };
  proxy?: Partial2<ProxyRef>;
  options?: Partial2<TranslateOptions>;
  expectErrors?: boolean;
  secrets?: SecretMaterial;
}

export const DEFAULT_OPTIONS: TranslateOptions = { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: 'weft-control' };

export function buildCase(raw: RawCase): GoldenCase {
  const m = raw.model ?? {};
  const services = (m.services ?? []).map((s) => ({ namespace: 'default', ports: [], ...s }) as Service);
  const perService = new Map<string, number>();
  const instances = (m.instances ?? []).map((i) => {
    const key = `${i.service}.${i.namespace ?? 'default'}`;
    const n = (perService.get(key) ?? 0) + 1;
    perService.set(key, n);
    return { id: `${i.service}-${n}`, namespace: 'default', labels: {}, health: 'healthy', ttlSeconds: 0, ...i } as Instance;
  });
  const model: MeshModel = {
    revision: m.revision ?? 1,
    services,
    instances,
    routes: (m.routes ?? []).map((r) => ({ namespace: 'default', rules: [], ...r }) as Route),
    destinationPolicies: (m.destinationPolicies ?? []).map((p) => ({ namespace: 'default', ...p }) as DestinationPolicy),
    filterBindings: (m.filterBindings ?? []).map((b) =>
      ({ namespace: 'default', order: 0, config: {}, failurePolicy: 'fail_closed', ...b }) as FilterBinding),
    filterModules: (m.filterModules ?? []).map((f) => ({ size: 0, abiVersion: '0.2.1', ...f }) as FilterModule),
  };
  if (m.peerAuthentications) model.peerAuthentications = m.peerAuthentications.map((p) => ({ namespace: 'default', ...p }) as PeerAuthentication);
  if (m.authorizationPolicies) {
    model.authorizationPolicies = m.authorizationPolicies.map((p) => ({ namespace: 'default', action: 'ALLOW', ...p }) as AuthorizationPolicy);
  }
  const p = raw.proxy ?? {};
  const namespace = p.namespace ?? 'default';
  const own = services.find((s) => s.name === p.service && s.namespace === namespace);
  const proxy: ProxyRef = {
    id: `${p.service}-proxy`,
    namespace,
    kind: 'sidecar',
    inboundPort: 15006,
    outboundPort: 15001,
    appPort: own?.ports[0]?.port ?? 8080,
    appAddress: '127.0.0.1',
    bindAddress: '0.0.0.0',
    ...p,
  } as ProxyRef;
  return { model, proxy, options: { ...DEFAULT_OPTIONS, ...raw.options }, expectErrors: raw.expectErrors === true, ...(raw.secrets ? { secrets: raw.secrets } : {}) };
}

export function loadCase(file: string): GoldenCase {
  return buildCase(parse(readFileSync(file, 'utf8')) as RawCase);
}
