// Malformed bodies and manifests through HTTP: every one gets a 4xx in the
// contract's error shape naming the field path, and the store's revision
// does not move. (control/model has the same kind of table at the
// validation layer; this one proves the API keeps those paths end to end.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

interface Case {
  name: string;
  method?: 'POST' | 'PUT' | 'GET';
  url: string;
  body: unknown;
  status?: number;
  /** The path one of the error details must carry. */
  path: string;
}

const svc = (over: Record<string, unknown>) => ({ name: 'cart', ports: [{ port: 8080, protocol: 'http' }], ...over });
const route = (rule: Record<string, unknown>, over: Record<string, unknown> = {}) => ({ name: 'r1', service: 'orders', rules: [{ destinations: [{ service: 'orders' }], ...rule }], ...over });
const dp = (over: Record<string, unknown>) => ({ name: 'p1', service: 'orders', ...over });
const inst = (over: Record<string, unknown>) => ({ address: '127.0.0.1', port: 9000, ...over });
const doc = (kind: string, spec: string, meta = 'name: x') => `apiVersion: weft.dev/v1\nkind: ${kind}\nmetadata: {${meta}}\nspec:\n${spec}\n`;

const cases: Case[] = [
  // services
  { name: 'service without name', url: '/api/v1/services', body: { ports: [{ port: 80, protocol: 'http' }] }, path: 'name' },
  { name: 'service upper-case name', url: '/api/v1/services', body: svc({ name: 'Cart' }), path: 'name' },
  { name: 'service name too long', url: '/api/v1/services', body: svc({ name: 'a'.repeat(64) }), path: 'name' },
  { name: 'service name with underscore', url: '/api/v1/services', body: svc({ name: 'my_cart' }), path: 'name' },
  { name: 'service empty name', url: '/api/v1/services', body: svc({ name: '' }), path: 'name' },
  { name: 'service bad namespace', url: '/api/v1/services', body: svc({ namespace: 'Prod' }), path: 'namespace' },
  { name: 'service unknown field', url: '/api/v1/services', body: svc({ replicas: 3 }), path: 'replicas' },
  { name: 'service no ports', url: '/api/v1/services', body: svc({ ports: [] }), path: 'ports' },
  { name: 'service ports not an array', url: '/api/v1/services', body: svc({ ports: 'http' }), path: 'ports' },
  { name: 'service port zero', url: '/api/v1/services', body: svc({ ports: [{ port: 0, protocol: 'http' }] }), path: 'ports[0].port' },
  { name: 'service port too big', url: '/api/v1/services', body: svc({ ports: [{ port: 70000, protocol: 'http' }] }), path: 'ports[0].port' },
  { name: 'service port as string', url: '/api/v1/services', body: svc({ ports: [{ port: '80', protocol: 'http' }] }), path: 'ports[0].port' },
  { name: 'service port fractional', url: '/api/v1/services', body: svc({ ports: [{ port: 80.5, protocol: 'http' }] }), path: 'ports[0].port' },
  { name: 'service unknown protocol', url: '/api/v1/services', body: svc({ ports: [{ port: 80, protocol: 'udp' }] }), path: 'ports[0].protocol' },
  { name: 'service missing protocol', url: '/api/v1/services', body: svc({ ports: [{ port: 80 }] }), path: 'ports[0].protocol' },
  { name: 'service unknown port field', url: '/api/v1/services', body: svc({ ports: [{ port: 80, protocol: 'http', tls: true }] }), path: 'ports[0].tls' },
  { name: 'service duplicate port', url: '/api/v1/services', body: svc({ ports: [{ port: 80, protocol: 'http' }, { port: 80, protocol: 'grpc' }] }), path: 'ports[1].port' },
  { name: 'service duplicate port name', url: '/api/v1/services', body: svc({ ports: [{ name: 'a', port: 80, protocol: 'http' }, { name: 'a', port: 81, protocol: 'http' }] }), path: 'ports[1].name' },
  { name: 'health check relative path', url: '/api/v1/services', body: svc({ healthCheck: { path: 'healthz' } }), path: 'healthCheck.path' },
  { name: 'health check zero interval', url: '/api/v1/services', body: svc({ healthCheck: { path: '/h', intervalMs: 0 } }), path: 'healthCheck.intervalMs' },
  { name: 'health check unknown field', url: '/api/v1/services', body: svc({ healthCheck: { path: '/h', method: 'HEAD' } }), path: 'healthCheck.method' },
  { name: 'dependsOn unknown service', url: '/api/v1/services', body: svc({ dependsOn: ['nowhere'] }), status: 422, path: 'dependsOn[0]' },
  { name: 'dependsOn bad name', url: '/api/v1/services', body: svc({ dependsOn: ['Not Valid'] }), path: 'dependsOn[0]' },
  { name: 'service body is an array', url: '/api/v1/services', body: [svc({})], path: '' },
  { name: 'PUT service with other name', method: 'PUT', url: '/api/v1/services/orders', body: svc({ name: 'other' }), path: 'name' },
  // instances
  { name: 'instance bad address', url: '/api/v1/services/orders/instances', body: inst({ address: 'not an address!' }), path: 'address' },
  { name: 'instance host name', url: '/api/v1/services/orders/instances', body: inst({ address: 'orders-1.internal' }), path: 'address' },
  { name: 'instance bad IPv4', url: '/api/v1/services/orders/instances', body: inst({ address: '10.0.0.300' }), path: 'address' },
  { name: 'instance missing port', url: '/api/v1/services/orders/instances', body: { address: '127.0.0.1' }, path: 'port' },
  { name: 'instance port negative', url: '/api/v1/services/orders/instances', body: inst({ port: -1 }), path: 'port' },
  { name: 'instance unknown field', url: '/api/v1/services/orders/instances', body: inst({ weight: 3 }), path: 'weight' },
  { name: 'instance bad ttl', url: '/api/v1/services/orders/instances', body: inst({ ttlSeconds: -5 }), path: 'ttlSeconds' },
  { name: 'instance label value not string', url: '/api/v1/services/orders/instances', body: inst({ labels: { version: 2 } }), path: 'labels.version' },
  { name: 'instance bad label key', url: '/api/v1/services/orders/instances', body: inst({ labels: { 'bad key!': 'x' } }), path: 'labels["bad key!"]' },
  { name: 'instance bad health', url: '/api/v1/services/orders/instances', body: inst({ health: 'sick' }), path: 'health' },
  // routes
  { name: 'route no rules', url: '/api/v1/routes', body: route({}, { rules: [] }), path: 'rules' },
  { name: 'route no destinations', url: '/api/v1/routes', body: route({ destinations: [] }), path: 'rules[0].destinations' },
  { name: 'route negative weight', url: '/api/v1/routes', body: route({ destinations: [{ service: 'orders', weight: -1 }] }), path: 'rules[0].destinations[0].weight' },
  { name: 'route weights sum zero', url: '/api/v1/routes', body: route({ destinations: [{ service: 'orders', weight: 0 }] }), path: 'rules[0].destinations' },
  { name: 'route missing weight among several', url: '/api/v1/routes', body: route({ destinations: [{ service: 'orders', port: 8080, weight: 1 }, { service: 'orders' }] }), path: 'rules[0].destinations[1].weight' },
  { name: 'route unknown service', url: '/api/v1/routes', body: route({}, { service: 'ghost' }), status: 422, path: 'service' },
  { name: 'route unknown destination', url: '/api/v1/routes', body: route({ destinations: [{ service: 'ghost' }] }), status: 422, path: 'rules[0].destinations[0].service' },
  { name: 'route unknown subset', url: '/api/v1/routes', body: route({ destinations: [{ service: 'orders', subset: 'v9' }] }), status: 422, path: 'rules[0].destinations[0].subset' },
  { name: 'route unknown destination port', url: '/api/v1/routes', body: route({ destinations: [{ service: 'orders', port: 9999 }] }), status: 422, path: 'rules[0].destinations[0].port' },
  { name: 'route bad regex', url: '/api/v1/routes', body: route({ match: [{ path: { regex: '([a-z' } }] }), path: 'rules[0].match[0].path.regex' },
  { name: 'route lookahead regex', url: '/api/v1/routes', body: route({ match: [{ path: { regex: '(?=x)y' } }] }), path: 'rules[0].match[0].path.regex' },
  { name: 'route two path matchers', url: '/api/v1/routes', body: route({ match: [{ path: { exact: '/a', prefix: '/b' } }] }), path: 'rules[0].match[0].path' },
  { name: 'route lower-case method', url: '/api/v1/routes', body: route({ match: [{ method: 'get' }] }), path: 'rules[0].match[0].method' },
  { name: 'route bad header name', url: '/api/v1/routes', body: route({ match: [{ headers: [{ name: 'bad header', match: { exact: 'x' } }] }] }), path: 'rules[0].match[0].headers[0].name' },
  { name: 'route negative timeout', url: '/api/v1/routes', body: route({ timeoutMs: -1 }), path: 'rules[0].timeoutMs' },
  { name: 'route retries eleven attempts', url: '/api/v1/routes', body: route({ retries: { attempts: 11 } }), path: 'rules[0].retries.attempts' },
  { name: 'route unknown retryOn', url: '/api/v1/routes', body: route({ retries: { attempts: 2, retryOn: ['sometimes'] } }), path: 'rules[0].retries.retryOn[0]' },
  { name: 'route per-try over timeout', url: '/api/v1/routes', body: route({ timeoutMs: 100, retries: { attempts: 2, perTryTimeoutMs: 500 } }), path: 'rules[0].retries.perTryTimeoutMs' },
  { name: 'route rewrite without slash', url: '/api/v1/routes', body: route({ prefixRewrite: 'v2' }), path: 'rules[0].prefixRewrite' },
  { name: 'route fault percentage over 100', url: '/api/v1/routes', body: route({ fault: { abort: { httpStatus: 503, percentage: 150 } } }), path: 'rules[0].fault.abort.percentage' },
  { name: 'route fault bad status', url: '/api/v1/routes', body: route({ fault: { abort: { httpStatus: 99, percentage: 10 } } }), path: 'rules[0].fault.abort.httpStatus' },
  { name: 'route remove host header', url: '/api/v1/routes', body: route({ requestHeaders: { remove: ['host'] } }), path: 'rules[0].requestHeaders.remove[0]' },
  { name: 'route mirror percentage', url: '/api/v1/routes', body: route({ mirror: { service: 'orders', percentage: -1 } }), path: 'rules[0].mirror.percentage' },
  { name: 'route unknown rule field', url: '/api/v1/routes', body: route({ canary: true }), path: 'rules[0].canary' },
  // destination policies
  { name: 'policy unknown lb', url: '/api/v1/destination-policies', body: dp({ loadBalancer: { policy: 'fastest' } }), path: 'loadBalancer.policy' },
  { name: 'ring hash without key', url: '/api/v1/destination-policies', body: dp({ loadBalancer: { policy: 'ring_hash' } }), path: 'loadBalancer.hashOn' },
  { name: 'policy zero max connections', url: '/api/v1/destination-policies', body: dp({ circuitBreakers: { maxConnections: 0 } }), path: 'circuitBreakers.maxConnections' },
  { name: 'policy outlier percent', url: '/api/v1/destination-policies', body: dp({ outlierDetection: { maxEjectionPercent: 101 } }), path: 'outlierDetection.maxEjectionPercent' },
  { name: 'policy subset without labels', url: '/api/v1/destination-policies', body: dp({ subsets: [{ name: 'v1', labels: {} }] }), path: 'subsets[0].labels' },
  { name: 'policy duplicate subset', url: '/api/v1/destination-policies', body: dp({ subsets: [{ name: 'v1', labels: { v: '1' } }, { name: 'v1', labels: { v: '2' } }] }), path: 'subsets[1].name' },
  { name: 'policy unknown service', url: '/api/v1/destination-policies', body: dp({ service: 'ghost' }), status: 422, path: 'service' },
  // filter bindings
  { name: 'binding bad direction', url: '/api/v1/filter-bindings', body: { name: 'b', service: 'orders', direction: 'sideways', filter: 'auth' }, path: 'direction' },
  { name: 'binding order out of range', url: '/api/v1/filter-bindings', body: { name: 'b', service: 'orders', direction: 'inbound', filter: 'auth', order: 5000 }, path: 'order' },
  { name: 'binding unknown filter', url: '/api/v1/filter-bindings', body: { name: 'b', service: 'orders', direction: 'inbound', filter: 'nosuch' }, status: 422, path: 'filter' },
  // manifests (YAML through /apply)
  { name: 'manifest wrong apiVersion', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]').replace('weft.dev/v1', 'v1'), path: 'documents[0].apiVersion' },
  { name: 'manifest unknown kind', url: '/api/v1/apply', body: doc('Gateway', '  ports: []'), path: 'documents[0].kind' },
  { name: 'manifest missing metadata name', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]', 'namespace: default'), path: 'documents[0].metadata.name' },
  { name: 'manifest unknown metadata field', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]', 'name: x, labels: {a: b}'), path: 'documents[0].metadata.labels' },
  { name: 'manifest bad spec in second document', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]') + '---\n' + doc('Service', '  ports: [{port: 80, protocol: smtp}]', 'name: y'), path: 'documents[1].spec.ports[0].protocol' },
  { name: 'manifest unknown spec field', url: '/api/v1/apply', body: doc('Route', '  service: orders\n  hosts: [a]\n  rules: [{destinations: [{service: orders}]}]'), path: 'documents[0].spec.hosts' },
  { name: 'manifest route weight', url: '/api/v1/apply', body: doc('Route', '  service: orders\n  rules: [{destinations: [{service: orders, weight: -3}]}]'), path: 'documents[0].spec.rules[0].destinations[0].weight' },
  { name: 'manifest duplicate object', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]') + '---\n' + doc('Service', '  ports: [{port: 81, protocol: http}]'), path: 'documents[1].metadata.name' },
  { name: 'manifest reference to unknown subset', url: '/api/v1/apply', body: doc('Route', '  service: orders\n  rules: [{destinations: [{service: orders, subset: canary}]}]'), status: 422, path: 'documents[0].spec.rules[0].destinations[0].subset' },
  { name: 'manifest invalid YAML', url: '/api/v1/apply', body: 'apiVersion: weft.dev/v1\nkind: [Service\n', path: 'documents[0]' },
  { name: 'manifest alias to no anchor', url: '/api/v1/apply', body: doc('Service', '  ports: [{port: 80, protocol: http}]') + '---\nkind: *nope\n', path: 'documents[1]' },
  { name: 'manifest alias bomb', url: '/api/v1/apply', body: `a: &a [x, x, x, x, x, x, x, x, x]\n${Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`).join('\n')}\n`, path: 'documents[0]' },
  { name: 'delete with an alias to no anchor', url: '/api/v1/delete', body: 'kind: *nope\n', path: 'documents[0]' },
  { name: 'diff with an alias to no anchor', url: '/api/v1/diff', body: 'kind: *nope\n', path: 'documents[0]' },
  { name: 'JSON manifests not an array', url: '/api/v1/apply', body: { manifests: 'Service' }, path: 'manifests' },
  { name: 'JSON manifest bad port', url: '/api/v1/apply', body: { manifests: [{ apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'q' }, spec: { ports: [{ port: 0, protocol: 'http' }] } }] }, path: 'manifests[0].spec.ports[0].port' },
  { name: 'diff with a bad manifest', url: '/api/v1/diff', body: doc('Service', '  ports: [{port: 80, protocol: quic}]'), path: 'documents[0].spec.ports[0].protocol' },
  { name: 'apply dryRun not a boolean', url: '/api/v1/apply?dryRun=yes', body: doc('Service', '  ports: [{port: 80, protocol: http}]'), path: 'query.dryRun' },
  // other endpoints
  { name: 'token unknown role', url: '/api/v1/tokens', body: { role: 'owner' }, path: 'role' },
  { name: 'token unknown field', url: '/api/v1/tokens', body: { role: 'viewer', expires: '1d' }, path: 'expires' },
  { name: 'filter upload not base64', url: '/api/v1/filters', body: { name: 'f', wasm: '%%%' }, path: 'wasm' },
  { name: 'filter upload not wasm', url: '/api/v1/filters', body: { name: 'f', wasm: Buffer.from('hello').toString('base64') }, path: 'wasm' },
  { name: 'filter upload bad name', url: '/api/v1/filters', body: { name: 'F!', wasm: 'AGFzbQEAAAA=' }, path: 'name' },
  { name: 'proxy config unknown type', method: 'GET', url: '/api/v1/proxies/p1/config?type=secrets', body: undefined, path: 'query.type' },
  { name: 'revisions bad limit', method: 'GET', url: '/api/v1/revisions?limit=0', body: undefined, path: 'query.limit' },
];

test(`${cases.length} malformed bodies and manifests: 4xx naming the field, nothing stored`, async (t) => {
  assert.ok(cases.length >= 50);
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  const revision = h.store.revision();
  const failures: string[] = [];
  for (const c of cases) {
    const res = await h.call(c.method ?? 'POST', c.url, c.body);
    const details: { path: string; message: string }[] = res.json?.error?.details ?? [];
    const expected = c.status ?? 400;
    if (res.status !== expected) failures.push(`${c.name}: status ${res.status}, expected ${expected}: ${res.body.slice(0, 300)}`);
    else if (!details.some((d) => d.path === c.path)) failures.push(`${c.name}: no detail at "${c.path}": ${JSON.stringify(details)}`);
    else if (typeof res.json.error.message !== 'string' || !res.json.error.code) failures.push(`${c.name}: not the contract error shape`);
    if (h.store.revision() !== revision) failures.push(`${c.name}: the store moved to revision ${h.store.revision()}`);
  }
  assert.deepEqual(failures, []);
});

test('a text body on a JSON endpoint is a 415 saying what to send; /apply takes JSON or YAML as text', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const json = JSON.stringify({ name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  for (const type of ['text/plain', 'application/yaml']) {
    const res = await h.call('POST', '/api/v1/services', json, undefined, { 'content-type': type });
    assert.equal(res.status, 415, type);
    assert.equal(res.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
    assert.match(res.json.error.message, new RegExp(`content-type ${type} is not accepted here: send application/json`));
  }
  assert.equal(h.store.revision(), 0, 'nothing stored');
  const manifest = JSON.stringify({ apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'orders' }, spec: { ports: [{ port: 80, protocol: 'http' }] } });
  assert.equal((await h.call('POST', '/api/v1/apply', manifest, undefined, { 'content-type': 'text/plain' })).status, 200);
});
