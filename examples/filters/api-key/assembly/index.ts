// api-key: an example weft filter. Lets a request through when the calling
// workload's SPIFFE ID is trusted or it presents a known API key, strips the
// key before the request goes upstream, tells the upstream who the caller is
// (x-weft-client), and answers 401/403 itself otherwise. Counts decisions.
//
// Configuration (JSON):
//   { "header": "x-api-key",                       // where the key travels
//     "keys": { "k-123": "mobile-app" },            // key -> client name
//     "trustedPeers": ["spiffe://weft.local/ns/default/sa/web"] }

export * from '../../../../filters/sdk/exports';
import {
  Action, asciiLower, ConfigErrors, configRoot, getHeader, getPropertyString, HeaderMapType, HeaderPair, HttpContext,
  incrementCounter, logInfo, logWarn, registerRoot, removeHeader, replaceHeader, RootContext, sendLocalResponse,
} from '../../../../filters/sdk/index';

class ApiKeyConfig {
  header: string = 'x-api-key';
  /** [key, client, key, client, ...] */
  keys: string[] = [];
  trustedPeers: string[] = [];

  clientFor(key: string): string | null {
    for (let i = 0; i + 1 < this.keys.length; i += 2) if (this.keys[i] == key) return this.keys[i + 1];
    return null;
  }
}

class ApiKeyRoot extends RootContext {
  config: ApiKeyConfig = new ApiKeyConfig();

  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const node = configRoot(configuration, errors);
    const config = new ApiKeyConfig();
    if (node !== null) {
      node.allowOnly(['header', 'keys', 'trustedPeers']);
      config.header = asciiLower(node.nonEmpty('header', config.header));
      config.keys = node.stringMap('keys');
      config.trustedPeers = node.strings('trustedPeers');
      if (config.keys.length == 0 && config.trustedPeers.length == 0) node.fail('keys', 'give at least one key or trusted peer');
    }
    if (!errors.ok) {
      logWarn('api-key: invalid configuration: ' + errors.toString());
      return false;
    }
    this.config = config;
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return new ApiKeyStream(id, this);
  }
}

class ApiKeyStream extends HttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const config = (this.root as ApiKeyRoot).config;
    const peer = getPropertyString(['connection', 'uri_san_peer_certificate']);
    if (peer !== null && config.trustedPeers.includes(peer)) return this.allow(peer, config);

    const key = getHeader(HeaderMapType.RequestHeaders, config.header);
    if (key === null || key.length == 0) return this.deny(401, 'missing_api_key', 'missing API key');
    const client = config.clientFor(key);
    if (client === null) return this.deny(403, 'unknown_api_key', 'unknown API key');
    return this.allow(client, config);
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    replaceHeader(HeaderMapType.ResponseHeaders, 'x-weft-filter', 'api-key');
    return Action.Continue;
  }

  private allow(client: string, config: ApiKeyConfig): Action {
    // The key is a credential for this hop only; the upstream learns the client's name instead.
    removeHeader(HeaderMapType.RequestHeaders, config.header);
    replaceHeader(HeaderMapType.RequestHeaders, 'x-weft-client', client);
    incrementCounter('api_key_requests', ['result', 'allowed']);
    return Action.Continue;
  }

  private deny(status: u32, details: string, message: string): Action {
    incrementCounter('api_key_requests', ['result', 'denied']);
    logInfo('api-key: ' + message);
    const headers = [new HeaderPair('content-type', 'application/json')];
    if (status == 401) headers.push(new HeaderPair('www-authenticate', 'ApiKey'));
    sendLocalResponse(status, details, '{"error":"' + message + '"}', headers);
    return Action.Pause;
  }
}

registerRoot((id: u32): RootContext => new ApiKeyRoot(id));
