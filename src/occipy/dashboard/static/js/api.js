// The OCCI JSON API of this server (application/occi+json, GFD.226 over GFD.223).
// Credentials live in sessionStorage and go with every request; a 401 asks for them again.

export const OCCI_JSON = 'application/occi+json';
const KEY = 'occipy.dashboard.credentials';

export function credentials() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return stored && typeof stored === 'object' ? stored : null;
  } catch {
    return null;
  }
}

export function setCredentials(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function authorization() {
  const c = credentials();
  if (!c) return null;
  if (c.method === 'basic') return 'Basic ' + base64(`${c.user}:${c.password}`);
  if (c.method === 'bearer') return 'Bearer ' + c.token;
  return null;
}

/** An answer the server refused, with its message as the server wrote it. */
export class ApiError extends Error {
  constructor(status, statusText, message, challenge) {
    super(message || statusText || `HTTP ${status}`);
    this.status = status;
    this.statusText = statusText;
    this.challenge = challenge || '';
  }
}

async function errorFrom(response) {
  const text = await response.text();
  let message = text.trim();
  try {
    const body = JSON.parse(text);
    if (body && typeof body.message === 'string') message = body.message;
  } catch { /* a text/plain error: shown as is */ }
  return new ApiError(response.status, response.statusText, message, response.headers.get('WWW-Authenticate'));
}

/**
 * One request. `body` is sent as application/occi+json; `headers` may add OCCI filter headers.
 * Resolves to {status, data, operation, location}; rejects with ApiError (401 also fires
 * `occipy:unauthorized` on window).
 */
export async function request(method, path, {body, headers, signal, accept} = {}) {
  const h = new Headers(headers || {});
  h.set('Accept', accept || OCCI_JSON);
  const auth = authorization();
  if (auth) h.set('Authorization', auth);
  const init = {method, headers: h, cache: 'no-store', credentials: 'same-origin', signal};
  if (body !== undefined) {
    h.set('Content-Type', OCCI_JSON);
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401) window.dispatchEvent(new CustomEvent('occipy:unauthorized', {detail: error}));
    throw error;
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  return {
    status: response.status,
    data,
    operation: response.headers.get('X-OCCI-Operation'),
    location: response.headers.get('Location'),
  };
}

export const get = (path, options) => request('GET', path, options);

/**
 * A collection as JSON and, in the same order, the locations of its members (text/uri-list):
 * the JSON rendering carries ids, not locations, and an entity's location need not end in its id.
 */
export async function listWithLocations(path, options = {}) {
  const [json, uris] = await Promise.all([get(path, options), get(path, {...options, accept: 'text/uri-list'})]);
  const locations = typeof uris.data === 'string'
    ? uris.data.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.startsWith('#'))
    : [];
  return {data: json.data, locations};
}
