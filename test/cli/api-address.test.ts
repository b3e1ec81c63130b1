// An API address without a scheme ("localhost:8080", as one writes it for
// curl) or with another scheme is a usage error naming --api/WEFT_API (exit 2);
// it was reported as the API being unreachable ("is weft control running?").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { weft } from './control-process.ts';

test('a WEFT_API or --api that is no http(s) URL is a usage error naming it', async () => {
  for (const [api, args] of [['localhost:8080', []], ['127.0.0.1:8080', []], ['http://127.0.0.1:9', ['--api', 'ftp://weft.example']]] as const) {
    const result = await weft({ api, token: 't' }, ['get', 'services', ...args]);
    assert.equal(result.code, 2, result.stderr);
    const got = args.length ? 'ftp://weft.example' : api;
    assert.equal(result.stderr.trim(), `error: the API address (--api or WEFT_API) must be an http:// or https:// URL such as http://127.0.0.1:8080 (got "${got}")`);
  }
});
