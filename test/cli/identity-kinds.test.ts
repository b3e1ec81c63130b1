// `weft get authorization-policies|peer-authentications` work as for every
// kind (docs/identity.md): a table with what each says, and `-o yaml` prints
// manifests that `weft apply -f` takes back unchanged. Until 2026-11-28 the
// CLI knew them only by their API path: `-o yaml` printed the API's flat
// objects, which apply refused (apiVersion, kind, metadata, spec required).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl, weft, type ControlProcess } from './control-process.ts';

const POLICIES = `apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: orders-readers }
spec:
  service: orders
  rules:
    - principals: [spiffe://weft.local/ns/default/sa/frontend]
      methods: [GET]
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: no-admin }
spec: { service: orders, action: DENY, rules: [{ paths: ["/admin*"] }] }
---
apiVersion: weft.dev/v1
kind: AuthorizationPolicy
metadata: { name: no-debug }
spec: { service: orders, action: DENY, dryRun: true, rules: [{ paths: ["/debug*"] }] }
---
apiVersion: weft.dev/v1
kind: PeerAuthentication
metadata: { name: default }
spec: { mode: STRICT }
`;

describe('weft get for the identity kinds', () => {
  let dir: string;
  let control: ControlProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-identity-kinds-'));
    control = await startControl(join(dir, 'data'));
    const services = readFileSync(new URL('../../examples/manifests/services.yaml', import.meta.url), 'utf8');
    const applied = await weft(control, ['apply', '-f', '-'], {}, `${services}---\n${POLICIES}`);
    assert.equal(applied.code, 0, applied.stderr);
  });
  after(async () => {
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('tables say each policy\'s service, action (and dry run) or mode; ap and pa are short names', async () => {
    const ap = await weft(control, ['get', 'ap']);
    assert.equal(ap.code, 0, ap.stderr);
    assert.match(ap.stdout, /^NAMESPACE\s+NAME\s+SERVICE\s+ACTION\s+RULES$/m);
    assert.match(ap.stdout, /^default\s+no-admin\s+orders\s+DENY\s+1$/m);
    assert.match(ap.stdout, /^default\s+no-debug\s+orders\s+DENY \(dry run\)\s+1$/m, 'a dry-run policy says so');
    assert.match(ap.stdout, /^default\s+orders-readers\s+orders\s+ALLOW\s+1$/m);
    const pa = await weft(control, ['get', 'peer-authentications']);
    assert.equal(pa.code, 0, pa.stderr);
    assert.match(pa.stdout, /^NAMESPACE\s+NAME\s+SERVICE\s+MODE$/m);
    assert.match(pa.stdout, /^default\s+default\s+-\s+STRICT$/m);
  });

  it('-o yaml prints manifests that apply takes back unchanged', async () => {
    for (const kind of ['authorization-policies', 'peerauthentications']) {
      const yaml = await weft(control, ['get', kind, '-o', 'yaml']);
      assert.equal(yaml.code, 0, yaml.stderr);
      assert.match(yaml.stdout, /^apiVersion: weft\.dev\/v1$/m);
      const again = await weft(control, ['apply', '-f', '-'], {}, yaml.stdout);
      assert.equal(again.code, 0, `${kind}: ${again.stderr}`);
      assert.match(again.stdout, /^no changes \(revision \d+\)$/m);
    }
  });

  it('every manifest in docs/identity.md applies as written (on top of services.yaml)', async () => {
    // Until 2026-11-28 its PeerAuthentication example named a service that
    // exists nowhere: apply refused it ("unknown service shop/legacy").
    const doc = readFileSync(new URL('../../docs/identity.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    assert.ok(blocks.length >= 2, 'docs/identity.md has its PeerAuthentication and AuthorizationPolicy examples');
    for (const [i, yaml] of blocks.entries()) {
      const dry = await weft(control, ['apply', '--dry-run', '-f', '-'], {}, yaml);
      assert.equal(dry.code, 0, `yaml block ${i + 1} of docs/identity.md: ${dry.stderr}`);
    }
  });
});
