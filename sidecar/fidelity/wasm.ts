// envoy.extensions.filters.http.wasm.v3.Wasm (inline or inside an ECDS
// TypedExtensionConfig) -> WasmPluginConfig.

import type { WasmPluginConfig } from '../config.ts';
import { Fields, typeName } from './fields.ts';

export const WASM_TYPE = 'envoy.extensions.filters.http.wasm.v3.Wasm';

export function wasmFilter(f: Fields): WasmPluginConfig | undefined {
  const config = f.obj('config');
  f.done();
  if (!config) {
    f.fail('config', 'required');
    return undefined;
  }
  return pluginConfig(config);
}

function pluginConfig(f: Fields): WasmPluginConfig | undefined {
  const name = f.str('name') ?? '';
  const rootId = f.str('root_id') ?? '';
  const configuration = anyBytes(f.obj('configuration'));
  let failOpen = f.bool('fail_open') ?? false;
  const policy = f.enumOf('failure_policy', ['UNSPECIFIED', 'FAIL_CLOSED', 'FAIL_OPEN'] as const, ['UNSPECIFIED', 'FAIL_CLOSED', 'FAIL_OPEN']);
  if (policy === 'FAIL_OPEN') failOpen = true;
  if (policy === 'FAIL_CLOSED') failOpen = false;
  const vm = f.obj('vm_config');
  f.ignore('log_level');
  f.done();
  if (!vm) {
    f.fail('vm_config', 'required (vm references are not supported)');
    return undefined;
  }
  const vmId = vm.str('vm_id') ?? '';
  vm.enumOf('runtime', ['envoy.wasm.runtime.v8', 'envoy.wasm.runtime.null', 'envoy.wasm.runtime.wamr', 'envoy.wasm.runtime.wasmtime'] as const);
  // The VM configuration goes to proxy_on_vm_start; the host starts VMs with the plugin's.
  const vmConfiguration = anyBytes(vm.obj('configuration'));
  if (vmConfiguration.length > 0) vm.fail('configuration', 'vm configuration is not supported by the weft sidecar');
  vm.ignore('allow_precompiled', 'nack_on_code_cache_miss');
  const code = vm.obj('code');
  vm.done();
  if (!code) {
    vm.fail('code', 'required');
    return undefined;
  }
  const which = code.oneof(['remote', 'local']);
  let source: WasmPluginConfig['code'] | undefined;
  if (which === 'remote') {
    const remote = code.obj('remote')!;
    const http = remote.obj('http_uri');
    const sha256 = remote.str('sha256') ?? '';
    // Module fetches retry through the sidecar's own loop; the policy's shape does not change what is loaded.
    remote.ignore('retry_policy');
    remote.done();
    if (!sha256) remote.fail('sha256', 'required: the weft sidecar only runs modules it can verify');
    if (http) {
      const uri = http.str('uri') ?? '';
      // The cluster names the control plane in Envoy's bootstrap; the sidecar reaches uri directly.
      http.ignore('cluster');
      const timeoutMs = http.durationMs('timeout') ?? 10_000;
      http.done();
      if (!/^https?:\/\//.test(uri)) http.fail('uri', 'must be an http:// or https:// URL');
      else if (sha256) source = { kind: 'remote', uri, sha256: sha256.toLowerCase(), timeoutMs };
    } else remote.fail('http_uri', 'required');
  } else if (which === 'local') {
    const local = code.obj('local')!;
    const kind = local.oneof(['inline_bytes', 'filename']);
    if (kind === 'inline_bytes') source = { kind: 'inline', bytes: Buffer.from(local.str('inline_bytes') ?? '', 'base64') };
    else if (kind === 'filename') source = { kind: 'file', path: local.str('filename') ?? '' };
    else local.fail('inline_bytes', 'local code needs inline_bytes or filename');
    local.done();
  } else code.fail('remote', 'code needs remote or local');
  code.done();
  if (!source) return undefined;
  return { name, rootId, vmId, configuration, code: source, failOpen };
}

/** google.protobuf.Any carrying StringValue or BytesValue, as proxy_on_configure sees it. */
function anyBytes(f: Fields | undefined): Uint8Array {
  if (!f) return new Uint8Array();
  const t = typeName(f);
  let out = new Uint8Array();
  if (t === 'google.protobuf.StringValue') out = Buffer.from(f.str('value') ?? '');
  else if (t === 'google.protobuf.BytesValue') out = Buffer.from(f.str('value') ?? '', 'base64');
  else f.fail('@type', `configuration of type ${JSON.stringify(t)} is not supported (use StringValue or BytesValue)`);
  f.done();
  return out;
}
