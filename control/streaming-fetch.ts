// fetch for long-lived streams (weft tap: the CLI reading the API, the API
// reading a sidecar's admin /tap). Node's fetch gives up on a response whose
// headers take more than 300 s, and on a body quiet for 300 s (undici's
// headersTimeout and bodyTimeout): a tap of a proxy without traffic for five
// minutes was cut off, "cannot reach the weft API" or "the stream was cut
// off". These streams last as long as their reader wants, so neither limit
// applies; the reader ends them (Ctrl-C, an AbortSignal).
import { Agent, fetch } from 'undici';

const noIdleLimit = new Agent({ headersTimeout: 0, bodyTimeout: 0 });

export function streamingFetch(url: string, init: { headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  return fetch(url, { ...init, dispatcher: noIdleLimit });
}
