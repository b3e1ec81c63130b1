// Adapts the store and the registry to the controller's ModelSource: config
// changes come from store revisions, instance changes (including TTL expiry,
// which writes no revision) from the registry.
import { buildModel } from '../registry/index.ts';
import type { Registry } from '../registry/index.ts';
import type { Store } from '../store/index.ts';
import type { MeshModel } from '../model/types.ts';
import type { ModelChange, ModelSource } from './controller.ts';

const INSTANCE_KIND = 'Instance';

export function storeModelSource(store: Store, registry: Registry): ModelSource {
  return {
    model: () => buildModel(store, registry),
    refreshInstances(previous: MeshModel): MeshModel {
      const known = new Set(previous.services.map((s) => `${s.namespace}/${s.name}`));
      return { ...previous, revision: store.revision(), instances: registry.liveInstances().filter((i) => known.has(`${i.namespace}/${i.service}`)) };
    },
    subscribe(listener: (change: ModelChange) => void): () => void {
      const offStore = store.subscribe((revision) => {
        const record = store.history({ limit: 1 })[0];
        // instance registrations are reported by the registry below, with their service
        if (record && record.revision === revision && record.changes.length > 0 && record.changes.every((c) => c.kind === INSTANCE_KIND)) return;
        listener({ kind: 'config', revision, committedAt: Date.now() });
      });
      const offRegistry = registry.onChange((change) => {
        const i = change.instance;
        listener({ kind: 'instances', revision: store.revision(), committedAt: Date.now(), services: [`${i.namespace}/${i.service}`] });
      });
      return () => {
        offStore();
        offRegistry();
      };
    },
  };
}
