// The REST API client the pages share. The token lives in sessionStorage
// (gone when the tab closes); every error becomes an ApiError carrying the
// API's code, message and field paths, so pages can show it where it happened.

const TOKEN_KEY = 'weft.token';

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Set by app.js after whoami: {name, role, canWrite}. */
  operator: null,
  /**
   * Set by app.js: called with the ApiError when the control plane refuses the session's token (401: revoked or
   * unknown), from whichever call found out; it ends the session and shows the login page. Not called for the token
   * the login page is trying, which is not the session's.
   */
  onRefused: null,
};

/**
 * Characters a paste adds around or inside a token: whitespace (spaces, tabs, line breaks, no-break spaces) and the
 * invisible ones (zero-width space and joiners, word joiner, BOM, soft hyphen, direction marks).
 */
const PASTE_NOISE = /[\s\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]/g;

/** A pasted token without what the paste added (see PASTE_NOISE); a token never holds any of it. */
export function cleanToken(text) {
  return text.replace(PASTE_NOISE, '');
}

/**
 * Why `token` cannot be one, or undefined. Tokens are printable ASCII (weft_ and base64url); anything else (a smart
 * quote, an accented letter, a control character) is a typo or a paste gone wrong, and outside Latin-1 it cannot
 * even be sent in a header: fetch() throws a TypeError, which was reported as "cannot reach the control plane".
 */
export function tokenProblem(token) {
  return /^[\x21-\x7e]+$/.test(token) ? undefined : 'not a valid token (it holds characters a token never has)';
}

function refusedIfSession(err, token) {
  if ((err.status === 401 || err.code === 'INVALID_TOKEN') && token && token === session.token) session.onRefused?.(err);
  return err;
}

/** The Request for a call, or an ApiError when none can be built (not a network error: nothing was sent). */
function buildRequest(method, path, init, token) {
  if (token) {
    const problem = tokenProblem(token);
    if (problem) throw refusedIfSession(new ApiError(0, 'INVALID_TOKEN', problem), token);
    init.headers.authorization = `Bearer ${token}`;
  }
  try {
    return new Request(`/api/v1${path}`, { method, ...init });
  } catch (err) {
    throw new ApiError(0, 'BAD_REQUEST', `${method} ${path}: the browser cannot send this request: ${err.message}`);
  }
}

/** Calls /api/v1{path}; resolves to the parsed JSON, rejects with ApiError. */
export async function api(method, path, body, token = session.token) {
  return (await apiResponse(method, path, body, {}, token)).json;
}

/** api() with extra request headers (If-Match), resolving to {json, headers} (the ETag, x-weft-revision). */
export async function apiResponse(method, path, body, extraHeaders = {}, token = session.token) {
  const headers = { accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const request = buildRequest(method, path, { headers, body: body === undefined ? undefined : JSON.stringify(body) }, token);
  let res;
  try {
    res = await fetch(request);
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `cannot reach the control plane: ${err.message}`);
  }
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const e = json?.error ?? {};
    throw refusedIfSession(new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `${method} ${path}: HTTP ${res.status}`, e.details ?? []), token);
  }
  return { json, headers: res.headers };
}

export const get = (path) => api('GET', path);

/** GET of a JSON-lines stream (a proxy's tap): calls onLine with each parsed line until it ends or `signal` aborts. */
export async function stream(path, onLine, signal) {
  const token = session.token;
  const request = buildRequest('GET', path, { headers: { accept: 'application/x-ndjson' }, signal }, token);
  let res;
  try {
    res = await fetch(request);
  } catch (err) {
    if (signal?.aborted) return;
    throw new ApiError(0, 'NETWORK', `cannot reach the control plane: ${err.message}`);
  }
  if (!res.ok) {
    const e = (await res.json().catch(() => ({})))?.error ?? {};
    throw refusedIfSession(new ApiError(res.status, e.code ?? `HTTP_${res.status}`, e.message ?? `GET ${path}: HTTP ${res.status}`, e.details ?? []), token);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line) onLine(JSON.parse(line));
      }
    }
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
}

