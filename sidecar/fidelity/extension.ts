// TypedExtensionConfig (ECDS) -> ExtensionConfig: only wasm HTTP filters.

import type { ExtensionConfig } from '../config.ts';
import { Fields, typeName } from './fields.ts';
import type { FieldError } from './fields.ts';
import { WASM_TYPE, wasmFilter } from './wasm.ts';

export function decodeExtensionConfig(value: unknown, errors: FieldError[]): ExtensionConfig | undefined {
  const f = Fields.of(value, '', errors);
  if (!f) return undefined;
  const name = f.str('name') ?? '';
  const tc = f.obj('typed_config');
  f.done();
  if (!tc) {
    f.fail('typed_config', 'required');
    return undefined;
  }
  if (typeName(tc) !== WASM_TYPE) {
    tc.fail('@type', `extension ${JSON.stringify(typeName(tc))} is not supported by the weft sidecar (only ${WASM_TYPE})`);
    return undefined;
  }
  const plugin = wasmFilter(tc);
  return plugin ? { name, plugin } : undefined;
}
