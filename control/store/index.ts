// The store's public surface.
export type { Change, ChangeRef, CommitMeta, RevisionInfo, Store, StoredObject } from './store.ts';
export { RUNTIME_KINDS, ROLLBACK_EXEMPT_KINDS } from './store.ts';
export { openFileStore, type FileStore, type FileStoreOptions } from './file-store.ts';
export { createMemoryStore } from './memory-store.ts';
export { rollbackChanges } from './rollback.ts';
export { canonicalJson } from './state.ts';
