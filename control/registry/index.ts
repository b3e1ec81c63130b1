// The registry's public surface.
export { createRegistry, INSTANCE_KIND, type InstanceChange, type Registry, type RegistryOptions } from './registry.ts';
export { buildModel } from './build-model.ts';
