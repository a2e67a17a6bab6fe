// The console's API client: same-origin fetches to /api/v1, the session's
// tokens (in sessionStorage, so they die with the tab), one refresh on a
// 401, and errors as `ApiError` carrying the field the API names.
//
// A refresh token is single use, and presenting a spent one revokes its
// whole family, so concurrent 401s share one refresh (`refreshing`).

const STORAGE_KEY = 'muckard.console.session';

/** A refused or failed request, as the API's error body describes it. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const detail = (body && typeof body === 'object' && body.error) || {};
    super(typeof detail.message === 'string' ? detail.message : describeStatus(status));
    this.name = 'ApiError';
    this.status = status;
    this.code = typeof detail.code === 'string' ? detail.code : null;
    // `field` names the request field, query or path parameter at fault;
    // `reason` is why, without the field's name.
    this.field = typeof detail.field === 'string' ? detail.field : null;
    this.reason = typeof detail.reason === 'string' ? detail.reason : null;
    this.retryAfter = retryAfter;
  }
}

function describeStatus(status) {
  if (status === 0) return 'the server could not be reached';
  if (status >= 500) return `the server failed (${status}); try again`;
  return `the request was refused (${status})`;
}

let session = readStoredSession();
let refreshing = null;
const sessionListeners = new Set();

function readStoredSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    return stored && typeof stored.access_token === 'string' ? stored : null;
  } catch {
    return null;
  }
}

/** The logged-in session: `{access_token, refresh_token, user_id, role}` or null. */
export function currentSession() {
  return session;
}

/** Calls `listener(session, reason)` whenever the session changes. */
export function onSessionChange(listener) {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

function setSession(next, reason) {
  session = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
  for (const listener of sessionListeners) listener(session, reason);
}

function sessionFrom(pair) {
  return {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    user_id: pair.user_id,
    role: pair.role,
  };
}

/** Logs in; the session is kept from then on. */
export async function logIn(email, password) {
  const pair = await request('POST', '/auth/login', { body: { email, password }, auth: false });
  setSession(sessionFrom(pair), 'login');
  return pair;
}

/** Logs out: the refresh token's family is revoked, the session forgotten. */
export async function logOut() {
  const ending = session;
  setSession(null, 'logout');
  if (ending) {
    try {
      await request('POST', '/auth/logout', { body: { refresh_token: ending.refresh_token }, auth: false });
    } catch {
      // The session is gone from this tab whatever the server said.
    }
  }
}

/** Spends the refresh token for a new pair; false (and no session) when refused. */
function refresh() {
  if (!refreshing) {
    const spent = session;
    refreshing = (async () => {
      if (!spent) return false;
      try {
        const pair = await request('POST', '/auth/refresh', {
          body: { refresh_token: spent.refresh_token },
          auth: false,
        });
        setSession(sessionFrom(pair), 'refresh');
        return true;
      } catch (error) {
        if (error instanceof ApiError && error.status === 0) throw error;
        setSession(null, 'expired');
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * A fetch to `/api/v1${path}` with the session's bearer token, renewed
 * once on a 401. Returns the Response (for the event stream); throws
 * ApiError only for a network failure.
 */
export async function authorizedFetch(path, init = {}) {
  const send = () => {
    const headers = new Headers(init.headers || {});
    if (session) headers.set('Authorization', `Bearer ${session.access_token}`);
    return fetch(`/api/v1${path}`, { ...init, headers, credentials: 'same-origin' });
  };
  let response;
  try {
    response = await send();
    if (response.status === 401 && session && (await refresh())) response = await send();
  } catch (error) {
    if (error && error.name === 'AbortError') throw error;
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, null, null);
  }
  return response;
}

/**
 * One API call. Options: `body` (sent as JSON), `query` (an object; empty
 * values left out), `auth` (default true), `idempotent` (sends a fresh
 * Idempotency-Key, the same one if the request is sent again after a
 * refresh), `text` (resolve with the body's exact text), `rawBody` (a
 * string sent as it is, as JSON), `signal`.
 */
export async function request(method, path, options = {}) {
  const { body, rawBody, query, auth = true, idempotent = false, text = false, signal } = options;
  const headers = { Accept: 'application/json' };
  if (body !== undefined || rawBody !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotent) headers['Idempotency-Key'] = crypto.randomUUID();
  const init = {
    method,
    headers,
    signal,
    body: rawBody !== undefined ? rawBody : body !== undefined ? JSON.stringify(body) : undefined,
  };
  const target = path + queryString(query);
  let response;
  if (auth) {
    response = await authorizedFetch(target, init);
  } else {
    try {
      response = await fetch(`/api/v1${target}`, { ...init, credentials: 'same-origin' });
    } catch (error) {
      if (error && error.name === 'AbortError') throw error;
      throw new ApiError(0, null, null);
    }
  }
  const contentType = response.headers.get('content-type') || '';
  const raw = response.status === 204 ? '' : await response.text();
  if (!response.ok) {
    let parsed = null;
    try {
      parsed = contentType.includes('json') && raw ? JSON.parse(raw) : null;
    } catch {
      parsed = null;
    }
    const retryAfter = Number(response.headers.get('retry-after')) || null;
    throw new ApiError(response.status, parsed, retryAfter);
  }
  if (text) return raw;
  if (!raw) return null;
  return contentType.includes('json') ? JSON.parse(raw) : raw;
}

function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** A path segment, encoded (ids from the API or a form are never trusted). */
export function segment(value) {
  return encodeURIComponent(String(value));
}
