// Table-driven bad input: every malformed service, instance, route, policy,
// binding and manifest is refused with an error at the right field path, and
// nothing reaches the store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateService } from '../../control/model/service.ts';
import { validateRoute } from '../../control/model/route.ts';
import { validateDestinationPolicy } from '../../control/model/destination-policy.ts';
import { validateFilterBinding } from '../../control/model/filter-binding.ts';
import { parseManifests } from '../../control/model/manifest.ts';
import type { Result } from '../../control/model/result.ts';
import { createMemoryStore } from '../../control/store/memory-store.ts';
import { createRegistry } from '../../control/registry/registry.ts';

const svc = (extra: Record<string, unknown>) => ({ name: 'orders', ports: [{ port: 8080, protocol: 'http' }], ...extra });
const route = (rule: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name: 'orders-route',
  service: 'orders',
  rules: [{ destinations: [{ service: 'orders' }], ...rule }],
  ...extra,
});
const policy = (extra: Record<string, unknown>) => ({ name: 'orders-policy', service: 'orders', ...extra });
const binding = (extra: Record<string, unknown>) => ({ name: 'auth-in', service: 'orders', direction: 'inbound', filter: 'auth', ...extra });
const manifest = (kind: string, spec: unknown, metadata: unknown = { name: 'x' }) =>
  `apiVersion: weft.dev/v1\nkind: ${kind}\nmetadata: ${JSON.stringify(metadata)}\nspec: ${JSON.stringify(spec)}\n`;
const okService = manifest('Service', { ports: [{ port: 80, protocol: 'http' }] }, { name: 'web' });

type Case = [what: string, kind: 'service' | 'route' | 'policy' | 'binding' | 'instance' | 'manifests', input: unknown, path: string, message?: RegExp];

const cases: Case[] = [
  // services
  ['service: not an object', 'service', 'orders', ''],
  ['service: missing name', 'service', { ports: [{ port: 80, protocol: 'http' }] }, 'name', /required/],
  ['service: empty name', 'service', svc({ name: '' }), 'name', /DNS-1123/],
  ['service: upper-case name', 'service', svc({ name: 'Orders' }), 'name', /DNS-1123/],
  ['service: name ends with dash', 'service', svc({ name: 'orders-' }), 'name'],
  ['service: name too long', 'service', svc({ name: 'a'.repeat(64) }), 'name'],
  ['service: bad namespace', 'service', svc({ namespace: 'Prod_1' }), 'namespace', /DNS-1123/],
  ['service: unknown field', 'service', svc({ replicas: 3 }), 'replicas', /unknown field/],
  ['service: no ports', 'service', svc({ ports: [] }), 'ports'],
  ['service: port 0', 'service', svc({ ports: [{ port: 0, protocol: 'http' }] }), 'ports[0].port', /1\.\.65535/],
  ['service: port 65536', 'service', svc({ ports: [{ port: 80, protocol: 'http' }, { port: 65536, protocol: 'tcp' }] }), 'ports[1].port', /1\.\.65535/],
  ['service: fractional port', 'service', svc({ ports: [{ port: 80.5, protocol: 'http' }] }), 'ports[0].port'],
  ['service: port as string', 'service', svc({ ports: [{ port: '80', protocol: 'http' }] }), 'ports[0].port'],
  ['service: unknown protocol', 'service', svc({ ports: [{ port: 80, protocol: 'udp' }] }), 'ports[0].protocol', /http, http2, grpc, tcp/],
  ['service: duplicate port', 'service', svc({ ports: [{ port: 80, protocol: 'http' }, { port: 80, protocol: 'grpc' }] }), 'ports[1].port', /duplicate port 80/],
  ['service: duplicate port name', 'service', svc({ ports: [{ name: 'web', port: 80, protocol: 'http' }, { name: 'web', port: 81, protocol: 'http' }] }), 'ports[1].name', /duplicate port name/],
  ['service: unknown port field', 'service', svc({ ports: [{ port: 80, protocol: 'http', targetPort: 81 }] }), 'ports[0].targetPort', /unknown field/],
  ['service: relative health path', 'service', svc({ healthCheck: { path: 'healthz' } }), 'healthCheck.path', /absolute/],
  ['service: NUL in the health path (Envoy refuses it in a header value)', 'service', svc({ healthCheck: { path: '/healthz\u0000' } }), 'healthCheck.path', /control characters/],
  ['service: zero health interval', 'service', svc({ healthCheck: { path: '/healthz', intervalMs: 0 } }), 'healthCheck.intervalMs', /positive/],
  ['service: negative health timeout', 'service', svc({ healthCheck: { path: '/h', timeoutMs: -5 } }), 'healthCheck.timeoutMs'],
  ['service: health timeout above interval', 'service', svc({ healthCheck: { path: '/h', intervalMs: 1000, timeoutMs: 5000 } }), 'healthCheck.timeoutMs', /intervalMs/],
  ['service: empty status range', 'service', svc({ healthCheck: { path: '/h', expectedStatuses: [{ start: 300, end: 200 }] } }), 'healthCheck.expectedStatuses[0].end'],
  ['service: health check on a tcp-only service', 'service', svc({ ports: [{ port: 5432, protocol: 'tcp' }], healthCheck: { path: '/healthz' } }), 'healthCheck', /only tcp ports/],
  ['service: bad dependsOn', 'service', svc({ dependsOn: ['payments', 'Bad Name'] }), 'dependsOn[1]'],
  ['service: duplicate dependsOn', 'service', svc({ dependsOn: ['payments', 'payments'] }), 'dependsOn[1]', /duplicate/],
  // instances (through the registry)
  ['instance: missing address', 'instance', { port: 8080 }, 'address', /required/],
  ['instance: bad IPv4', 'instance', { address: '10.0.0.300', port: 8080 }, 'address', /IPv4 or IPv6/],
  ['instance: bad hostname', 'instance', { address: 'bad_host!', port: 8080 }, 'address'],
  // A host name passed here and then failed Envoy's EDS check, freezing the endpoints of every cluster published with it.
  ['instance: host name', 'instance', { address: 'orders-1.internal', port: 8080 }, 'address', /not a host name/],
  ['instance: address with port', 'instance', { address: '10.0.0.1:8080', port: 8080 }, 'address'],
  ['instance: port out of range', 'instance', { address: '10.0.0.1', port: 70000 }, 'port', /1\.\.65535/],
  ['instance: negative ttl', 'instance', { address: '10.0.0.1', port: 80, ttlSeconds: -1 }, 'ttlSeconds'],
  ['instance: bad health', 'instance', { address: '10.0.0.1', port: 80, health: 'sick' }, 'health', /healthy, unhealthy, draining/],
  ['instance: bad label key', 'instance', { address: '10.0.0.1', port: 80, labels: { 'ver sion': 'v1' } }, 'labels["ver sion"]', /label key/],
  ['instance: bad label value', 'instance', { address: '10.0.0.1', port: 80, labels: { version: 'v1!' } }, 'labels.version', /label value/],
  ['instance: non-string label', 'instance', { address: '10.0.0.1', port: 80, labels: { version: 2 } }, 'labels.version'],
  ['instance: unknown field', 'instance', { address: '10.0.0.1', port: 80, weight: 3 }, 'weight', /unknown field/],
  ['instance: empty zone', 'instance', { address: '10.0.0.1', port: 80, zone: '' }, 'zone'],
  // routes
  ['route: no rules', 'route', route({}, { rules: [] }), 'rules'],
  ['route: bad service', 'route', route({}, { service: 'Orders' }), 'service'],
  ['route: no destinations', 'route', route({ destinations: [] }), 'rules[0].destinations'],
  ['route: negative weight', 'route', route({ destinations: [{ service: 'a', weight: -1 }, { service: 'b', weight: 2 }] }), 'rules[0].destinations[0].weight'],
  ['route: zero weight sum', 'route', route({ destinations: [{ service: 'a', weight: 0 }, { service: 'b', weight: 0 }] }), 'rules[0].destinations', /positive sum/],
  ['route: missing weight among several', 'route', route({ destinations: [{ service: 'a', weight: 90 }, { service: 'b' }] }), 'rules[0].destinations[1].weight', /required/],
  ['route: bad subset name', 'route', route({ destinations: [{ service: 'a', subset: 'V2' }] }), 'rules[0].destinations[0].subset'],
  ['route: regex does not compile', 'route', route({ match: [{ path: { regex: '/api/(' } }] }), 'rules[0].match[0].path.regex', /does not compile/],
  // Envoy replaces the whole path when the match is a regex; the weft sidecar kept it: the two data planes disagreed.
  ['route: prefixRewrite with a regex path match', 'route', route({ match: [{ path: { prefix: '/a' } }, { path: { regex: '/b/.*' } }], prefixRewrite: '/v2/' }), 'rules[0].prefixRewrite', /match\[1\] matches the path by regex/],
  ['route: lookahead regex', 'route', route({ match: [{ path: { regex: '/(?!admin)' } }] }), 'rules[0].match[0].path.regex', /RE2/],
  // Accepted before, refused by Envoy's RE2 (and \\Z by the weft sidecar too): the API said 201, the proxies NACKed.
  ['route: regex with \\Z', 'route', route({ match: [{ path: { regex: '/api/v1\\Z' } }] }), 'rules[0].match[0].path.regex', /does not compile/],
  ['route: regex with \\u escape', 'route', route({ match: [{ headers: [{ name: 'x-a', match: { regex: '\\u00e9t\\u00e9' } }] }] }), 'rules[0].match[0].headers[0].match.regex', /\\u/],
  ['route: regex repeating past 1000', 'route', route({ match: [{ path: { regex: '/[a-z]{1,1001}' } }] }), 'rules[0].match[0].path.regex', /1000/],
  // Accepted before (2026-11-29), then refused by Envoy: the API said 200 and every caller of the service got no config.
  ['route: empty class [^] (RE2 reads ] as a literal there)', 'route', route({ match: [{ path: { regex: '/api/[^]*' } }] }), 'rules[0].match[0].path.regex', /empty class \[\^\]/],
  ['route: empty path regex', 'route', route({ match: [{ path: { regex: '' } }] }), 'rules[0].match[0].path.regex', /length greater or equal to 1/],
  ['route: empty header prefix', 'route', route({ match: [{ headers: [{ name: 'x-a', match: { prefix: '' } }] }] }), 'rules[0].match[0].headers[0].match.prefix', /length greater or equal to 1/],
  ['route: prefixRewrite with CR LF', 'route', route({ match: [{ path: { prefix: '/a' } }], prefixRewrite: '/b\r\nx: y' }), 'rules[0].prefixRewrite', /control characters/],
  ['route: two string matchers', 'route', route({ match: [{ path: { exact: '/a', prefix: '/' } }] }), 'rules[0].match[0].path', /exactly one/],
  ['route: relative path prefix', 'route', route({ match: [{ path: { prefix: 'api' } }] }), 'rules[0].match[0].path.prefix', /start with/],
  ['route: lower-case method', 'route', route({ match: [{ method: 'get' }] }), 'rules[0].match[0].method'],
  ['route: header match without matcher', 'route', route({ match: [{ headers: [{ name: 'x-user', match: {} }] }] }), 'rules[0].match[0].headers[0].match', /exactly one/],
  ['route: present false', 'route', route({ match: [{ queryParams: [{ name: 'debug', match: { present: false } }] }] }), 'rules[0].match[0].queryParams[0].match.present'],
  ['route: unknown match field', 'route', route({ match: [{ uri: '/a' }] }), 'rules[0].match[0].uri', /unknown field/],
  ['route: negative timeout', 'route', route({ timeoutMs: -1 }), 'rules[0].timeoutMs', /0\.\.86400000 \(0: none\)/],
  ['route: unknown retryOn', 'route', route({ retries: { attempts: 3, retryOn: ['5xx', 'sometimes'] } }), 'rules[0].retries.retryOn[1]', /gateway-error/],
  // An Envoy condition the weft sidecar NACKs (and that needs config a rule cannot give): refused, not a 201 and a NACK.
  ['route: retryOn retriable-headers', 'route', route({ retries: { attempts: 3, retryOn: ['retriable-headers'] } }), 'rules[0].retries.retryOn[0]', /gateway-error/],
  ['route: eleven attempts', 'route', route({ retries: { attempts: 11 } }), 'rules[0].retries.attempts'],
  ['route: status codes without condition', 'route', route({ retries: { attempts: 2, retryOn: ['5xx'], retriableStatusCodes: [503] } }), 'rules[0].retries.retriableStatusCodes'],
  ['route: per-try above timeout', 'route', route({ timeoutMs: 1000, retries: { attempts: 2, perTryTimeoutMs: 2000 } }), 'rules[0].retries.perTryTimeoutMs'],
  ['route: relative prefixRewrite', 'route', route({ prefixRewrite: 'v2/' }), 'rules[0].prefixRewrite'],
  ['route: add host header', 'route', route({ requestHeaders: { add: [{ name: 'host', value: 'x' }] } }), 'rules[0].requestHeaders.add[0].name', /host/],
  ['route: header value with newline', 'route', route({ responseHeaders: { add: [{ name: 'x-a', value: 'a\r\nb' }] } }), 'rules[0].responseHeaders.add[0].value', /CR/],
  // Envoy NACKs a lone % in an added header value and expands %...% commands; the weft sidecar NACKs both.
  ['route: header value with a percent sign', 'route', route({ requestHeaders: { add: [{ name: 'x-discount', value: '10%' }] } }), 'rules[0].requestHeaders.add[0].value', /'%'/],
  ['route: header value with a command operator', 'route', route({ responseHeaders: { add: [{ name: 'x-peer', value: '%DOWNSTREAM_REMOTE_ADDRESS%' }] } }), 'rules[0].responseHeaders.add[0].value', /command operator/],
  ['route: mirror percentage above 100', 'route', route({ mirror: { service: 'shadow', percentage: 150 } }), 'rules[0].mirror.percentage', /0\.\.100/],
  ['route: fault with nothing', 'route', route({ fault: {} }), 'rules[0].fault', /delay, abort/],
  ['route: fault abort status', 'route', route({ fault: { abort: { httpStatus: 700, percentage: 10 } } }), 'rules[0].fault.abort.httpStatus'],
  ['route: fault response rate limit of 0', 'route', route({ fault: { responseRateLimit: { limitKbps: 0, percentage: 10 } } }), 'rules[0].fault.responseRateLimit.limitKbps', /integer in 1\.\./],
  ['route: fault response rate limit without a percentage', 'route', route({ fault: { responseRateLimit: { limitKbps: 64 } } }), 'rules[0].fault.responseRateLimit.percentage'],
  ['route: fault negative percentage', 'route', route({ fault: { delay: { fixedDelayMs: 100, percentage: -1 } } }), 'rules[0].fault.delay.percentage'],
  ['route: duplicate rule names', 'route', { name: 'r', service: 'orders', rules: [{ name: 'a', destinations: [{ service: 'x' }] }, { name: 'a', destinations: [{ service: 'y' }] }] }, 'rules[1].name', /duplicate/],
  // destination policies
  ['policy: duplicate subset', 'policy', policy({ subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v1', labels: { version: 'v2' } }] }), 'subsets[1].name', /duplicate/],
  ['policy: subset without labels', 'policy', policy({ subsets: [{ name: 'v1', labels: {} }] }), 'subsets[0].labels'],
  ['policy: subset bad label', 'policy', policy({ subsets: [{ name: 'v1', labels: { version: '-v1' } }] }), 'subsets[0].labels.version'],
  ['policy: unknown lb policy', 'policy', policy({ loadBalancer: { policy: 'maglev' } }), 'loadBalancer.policy', /round_robin/],
  ['policy: ring hash without key', 'policy', policy({ loadBalancer: { policy: 'ring_hash' } }), 'loadBalancer.hashOn', /exactly one/],
  ['policy: hashOn on round robin', 'policy', policy({ loadBalancer: { policy: 'round_robin', hashOn: { header: 'x-user' } } }), 'loadBalancer.hashOn', /ring_hash/],
  ['policy: zero max connections', 'policy', policy({ circuitBreakers: { maxConnections: 0 } }), 'circuitBreakers.maxConnections'],
  ['policy: negative max retries', 'policy', policy({ circuitBreakers: { maxRetries: -1 } }), 'circuitBreakers.maxRetries', /0\.\./],
  ['policy: ejection percent above 100', 'policy', policy({ outlierDetection: { maxEjectionPercent: 101 } }), 'outlierDetection.maxEjectionPercent', /0\.\.100/],
  // Envoy's max_ejection_percent is a UInt32Value: 12.5 passed here and then failed every snapshot of every caller.
  ['policy: fractional ejection percent', 'policy', policy({ outlierDetection: { maxEjectionPercent: 12.5 } }), 'outlierDetection.maxEjectionPercent', /whole percentage/],
  ['policy: negative connect timeout', 'policy', policy({ connectTimeoutMs: -100 }), 'connectTimeoutMs'],
  ['policy: unknown field', 'policy', policy({ tls: { mode: 'strict' } }), 'tls', /unknown field/],
  // filter bindings
  ['binding: bad direction', 'binding', binding({ direction: 'both' }), 'direction', /inbound, outbound/],
  ['binding: missing filter', 'binding', { name: 'b', service: 'orders', direction: 'inbound' }, 'filter', /required/],
  ['binding: fractional order', 'binding', binding({ order: 1.5 }), 'order'],
  ['binding: bad failure policy', 'binding', binding({ failurePolicy: 'ignore' }), 'failurePolicy'],
  // manifests
  ['manifest: YAML syntax error', 'manifests', 'apiVersion: weft.dev/v1\nkind: [Service\n', 'documents[0]', /YAML/],
  ['manifest: wrong apiVersion', 'manifests', okService.replace('weft.dev/v1', 'v1'), 'documents[0].apiVersion', /weft\.dev\/v1/],
  ['manifest: unknown kind', 'manifests', manifest('Gateway', {}), 'documents[0].kind', /known kinds: Service/],
  ['manifest: missing metadata.name', 'manifests', manifest('Service', { ports: [{ port: 80, protocol: 'http' }] }, {}), 'documents[0].metadata.name', /required/],
  ['manifest: bad namespace', 'manifests', manifest('Service', { ports: [{ port: 80, protocol: 'http' }] }, { name: 'a', namespace: 'NS' }), 'documents[0].metadata.namespace'],
  ['manifest: name inside spec', 'manifests', manifest('Service', { name: 'a', ports: [{ port: 80, protocol: 'http' }] }), 'documents[0].spec.name', /unknown field/],
  ['manifest: not a mapping', 'manifests', '- a\n- b\n', 'documents[0]'],
  ['manifest: error in third document', 'manifests',
    `${okService}---\n${manifest('DestinationPolicy', { service: 'web' }, { name: 'p' })}---\n${manifest('Route', { service: 'web', rules: [{ destinations: [{ service: 'web', weight: 1 }, { service: 'web', subset: 'v2', weight: -5 }] }] }, { name: 'r' })}`,
    'documents[2].spec.rules[0].destinations[1].weight'],
  ['manifest: same object twice', 'manifests', `${okService}---\n${okService}`, 'documents[1].metadata.name', /documents\[0\]/],
  ['manifest: unknown top-level field', 'manifests', `${okService}status: {}\n`, 'documents[0].status', /unknown field/],
];

const validators: Record<'service' | 'route' | 'policy' | 'binding', (input: unknown) => Result<unknown>> = {
  service: validateService,
  route: validateRoute,
  policy: validateDestinationPolicy,
  binding: validateFilterBinding,
};

test('the bad-input table is large enough to mean something', () => {
  assert.ok(cases.length >= 50, `only ${cases.length} cases`);
});

test('every malformed input is refused at its field path and stores nothing', async () => {
  const store = createMemoryStore();
  await store.commit([{ op: 'put', kind: 'Service', namespace: 'default', name: 'orders', spec: { name: 'orders', namespace: 'default', ports: [{ port: 8080, protocol: 'http' }] } }], { actor: 'test', summary: 'seed' });
  const registry = createRegistry(store);
  const before = store.revision();

  for (const [what, kind, input, path, message] of cases) {
    let result: Result<unknown>;
    if (kind === 'instance') result = await registry.register('orders', 'default', input);
    else if (kind === 'manifests') result = parseManifests(input as string);
    else result = validators[kind](input);

    if (result.ok) {
      // What a caller does with a valid result: store it. The assertion below then catches it.
      await store.commit([{ op: 'put', kind, namespace: 'default', name: what.replace(/\W+/g, '-'), spec: result.value }], { actor: 'test', summary: what });
      assert.fail(`${what}: accepted ${JSON.stringify(input)}`);
    }
    const hit = result.errors.find((e) => e.path === path);
    assert.ok(hit, `${what}: no error at ${JSON.stringify(path)}; got ${JSON.stringify(result.errors)}`);
    if (message) assert.match(hit.message, message, `${what}: message at ${path}`);
    assert.equal(store.revision(), before, `${what}: store revision moved`);
  }
  assert.equal(registry.liveInstances().length, 0);
});

test('all errors are reported at once, not just the first', () => {
  const result = validateService({ name: 'Bad', ports: [{ port: 0, protocol: 'udp' }], extra: true });
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(result.errors.map((e) => e.path).sort(), ['extra', 'name', 'ports[0].port', 'ports[0].protocol']);
});
