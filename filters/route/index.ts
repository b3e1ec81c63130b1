// Route filter: picks the subset a request goes to and writes it into the
// subset header that routes match (`x-weft-subset: v2`). In order: a tester's
// explicit requested (only from allowed SPIFFE identities), the tenant from a
// claim header the auth filter forwarded, the sticky canary bucket of a user
// key, the default subset. A subset header sent by the client is never
// trusted: it is removed first.

export * from '../sdk/exports';
import {
  Action, ConfigErrors, getHeader, getHeaderValues, getPropertyString, HeaderMapType, HttpContext, incrementCounter,
  logDebug, logEnabled, logError, LogLevel, registerRoot, removeHeader, replaceHeader, RootContext,
} from '../sdk/index';
import { bucketOf, cookieValue } from './bucket';
import { isSubsetName, parseRouteConfig, RouteConfig } from './config';

class RouteRoot extends RootContext {
  config: RouteConfig = new RouteConfig();

  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const config = parseRouteConfig(configuration, errors);
    if (!errors.ok) {
      logError('route: invalid configuration: ' + errors.toString());
      return false;
    }
    this.config = config;
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return new RouteStream(id, this);
  }
}

class Decision {
  constructor(public subset: string, public source: string) {}
}

class RouteStream extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const config = (this.root as RouteRoot).config;
    const requested = config.overrideHeader.length > 0 ? getHeader(HeaderMapType.RequestHeaders, config.overrideHeader) : null;
    removeHeader(HeaderMapType.RequestHeaders, config.subsetHeader);
    if (requested !== null) removeHeader(HeaderMapType.RequestHeaders, config.overrideHeader);

    const d = decide(config, requested);
    if (d.subset.length > 0) replaceHeader(HeaderMapType.RequestHeaders, config.subsetHeader, d.subset);
    incrementCounter('weft_route_decisions_total', ['source', d.source, 'subset', d.subset.length > 0 ? d.subset : 'none']);
    if (logEnabled(LogLevel.Debug)) logDebug('route: subset "' + d.subset + '" from ' + d.source);
    return Action.Continue;
  }
}

function decide(config: RouteConfig, requested: string | null): Decision {
  if (requested !== null) {
    const peer = getPropertyString(['connection', 'uri_san_peer_certificate']);
    if (peer !== null && config.overrideIdentities.includes(peer) && isSubsetName(requested)) return new Decision(requested, 'override');
    incrementCounter('weft_route_override_denied_total', []);
  }
  if (config.tenantHeader.length > 0) {
    const tenant = getHeader(HeaderMapType.RequestHeaders, config.tenantHeader);
    if (tenant !== null) {
      for (let i = 0; i + 1 < config.tenantSubsets.length; i += 2) {
        if (config.tenantSubsets[i] == tenant) return new Decision(config.tenantSubsets[i + 1], 'tenant');
      }
    }
  }
  if (config.splits.length > 0) {
    const key = canaryKey(config);
    if (key !== null && key.length > 0) {
      const bucket = bucketOf(config.salt, key);
      let upper = 0;
      for (let i = 0; i < config.splits.length; i++) {
        upper += config.splits[i].percent;
        if (bucket < upper) return new Decision(config.splits[i].subset, 'canary');
      }
    }
  }
  return new Decision(config.defaultSubset, 'default');
}

function canaryKey(config: RouteConfig): string | null {
  if (config.canaryHeader.length > 0) return getHeader(HeaderMapType.RequestHeaders, config.canaryHeader);
  const cookies = getHeaderValues(HeaderMapType.RequestHeaders, 'cookie');
  for (let i = 0; i < cookies.length; i++) {
    const v = cookieValue(cookies[i], config.canaryCookie);
    if (v !== null) return v;
  }
  return null;
}

registerRoot((id: u32): RootContext => new RouteRoot(id));
