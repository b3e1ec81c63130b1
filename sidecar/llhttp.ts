// Node's llhttp binding, the parser node:http itself runs on (C++, no wasm
// hop), shared by the sidecar's HTTP/1.x server (http1.ts) and upstream
// client (h1-client.ts). node:_http_common is a legacy module that Node
// still ships for this purpose; its shape is pinned here.

import { createRequire } from 'node:module';

export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [k: number]: unknown;
}

interface HttpCommon {
  HTTPParser: {
    new (): NativeParser;
    REQUEST: number;
    RESPONSE: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
  };
  methods: string[];
}

export const { HTTPParser, methods } = createRequire(import.meta.url)('node:_http_common') as HttpCommon;

/** RFC 9110 token: what a header name may contain. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Anything a header value may not contain (CR and LF above all: no splitting). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Why a header cannot be written as it stands, or undefined when it can. */
export function headerError(name: string, value: string): string | undefined {
  if (!TOKEN.test(name)) return `invalid header name "${name}"`;
  if (INVALID_VALUE.test(value)) return `invalid character in header "${name}"`;
  return undefined;
}

/** Envoy's limit on an upstream response head (max_response_headers_kb, 60 KiB unset); node's own default would be 16 KiB. */
export const MAX_RESPONSE_HEADER_BYTES = 60 * 1024;
