// Operator-bound wasm filters. Each binding is one HCM filter entry that
// names an ECDS resource (config_discovery), so changing a filter's config or
// module never touches (and never drains) the listener. The module bytes come
// from the control plane's HTTP server, content-addressed by sha256.

import type { FilterBinding } from '../../model/types.ts';
import { registerHttpFilterFeature } from '../registry.ts';
import { adsConfigSource, TYPE, type Json } from '../envoy-json.ts';
import { bindingsOf, compare, type TranslationContext } from '../context.ts';
import { wasmExtensionConfigName } from '../names.ts';
import type { EnvoyResource } from '../index.ts';

function bindingPath(binding: FilterBinding): string {
  return `filterBindings[${binding.namespace}/${binding.name}]`;
}

function appProtocol(ctx: TranslationContext): string | undefined {
  const ports = ctx.self?.ports ?? [];
  return (ports.find((p) => p.port === ctx.proxy.appPort) ?? ports[0])?.protocol;
}

function wasmConfig(binding: FilterBinding, ctx: TranslationContext): Json | undefined {
  const module = ctx.modulesByName.get(binding.filter);
  if (!module) {
    ctx.errors.push({
      resource: wasmExtensionConfigName(binding.namespace, binding.name),
      path: `${bindingPath(binding)}.filter`,
      message: `unknown filter module "${binding.filter}"`,
    });
    return undefined;
  }
  const base = ctx.options.wasmBaseUrl.replace(/\/+$/, '');
  return {
    '@type': TYPE.wasm,
    config: {
      name: binding.name,
      root_id: binding.filter,
      vm_config: {
        runtime: 'envoy.wasm.runtime.v8',
        code: {
          remote: {
            http_uri: { uri: `${base}/wasm/${module.sha256}.wasm`, cluster: ctx.options.wasmClusterName, timeout: '10s' },
            sha256: module.sha256,
          },
        },
      },
      configuration: { '@type': TYPE.stringValue, value: JSON.stringify(binding.config ?? {}) },
      fail_open: binding.failurePolicy === 'fail_open',
    },
  };
}

registerHttpFilterFeature('wasm', {
  position: 'wasm',
  filters(target, ctx) {
    // Proxyless gRPC clients run no wasm.
    if (target.kind === 'proxyless') return [];
    return bindingsOf(ctx, target.kind).map((binding) => ({
      name: wasmExtensionConfigName(binding.namespace, binding.name),
      config_discovery: { config_source: adsConfigSource(), type_urls: [TYPE.wasm] },
    }));
  },
  extensionConfigs(ctx) {
    if (ctx.proxy.kind === 'proxyless-grpc') return [];
    const inbound = bindingsOf(ctx, 'inbound');
    // A tcp app gets a tcp_proxy inbound, with no HTTP filter chain to run the binding in.
    if (appProtocol(ctx) === 'tcp') {
      for (const binding of inbound) {
        ctx.errors.push({
          resource: wasmExtensionConfigName(binding.namespace, binding.name),
          path: `${bindingPath(binding)}.direction`,
          message: `service ${binding.service} serves tcp on port ${ctx.proxy.appPort}; inbound HTTP filters cannot apply`,
        });
      }
    }
    const bindings = [...inbound, ...bindingsOf(ctx, 'outbound')];
    const out: EnvoyResource[] = [];
    for (const binding of bindings) {
      const typed = wasmConfig(binding, ctx);
      const name = wasmExtensionConfigName(binding.namespace, binding.name);
      if (typed) out.push({ name, value: { name, typed_config: typed } });
    }
    return out.sort((a, b) => compare(a.name, b.name));
  },
});
