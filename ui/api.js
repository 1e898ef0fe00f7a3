// The dashboard's one door to the admin API: every call carries the token kept in
// sessionStorage as a bearer token; writes are JSON (the API refuses anything else). A 401 is
// thrown as SignInNeeded so the page can ask for the token again.

const API = new URL('../api/v1/', import.meta.url)
const TOKEN_KEY = 'weir.adminToken'

export class SignInNeeded extends Error {}

/** An answer other than 2xx: the API's `{error, message}` when it sent one. */
export class ApiError extends Error {
  constructor (status, body) {
    super(body?.message ?? `the admin API answered ${status}`)
    this.status = status
    this.code = body?.error ?? null
  }
}

export function token () {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function setToken (value) {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY)
  else sessionStorage.setItem(TOKEN_KEY, value)
}

async function call (method, path, body) {
  const headers = { accept: 'application/json' }
  const kept = token()
  if (kept !== null) headers.authorization = `Bearer ${kept}`
  const init = { method, headers, cache: 'no-store', credentials: 'omit' }
  if (method !== 'GET') {
    headers['content-type'] = 'application/json'
    if (body !== undefined) init.body = JSON.stringify(body)
  }
  const response = await fetch(new URL(path, API), init)
  let parsed = null
  try {
    parsed = await response.json()
  } catch {}
  if (response.status === 401) throw new SignInNeeded(parsed?.message ?? 'a valid admin token is required')
  if (!response.ok) throw new ApiError(response.status, parsed)
  return parsed
}

/** `path` is relative to /api/v1/ (`routes`, `routes/shop/stats?window=3`). */
export const get = (path) => call('GET', path)
export const post = (path, body) => call('POST', path, body)
export const put = (path, body) => call('PUT', path, body)

/** The path of a route's endpoint: `routePath('shop', 'rollout')` → `routes/shop/rollout`. */
export function routePath (route, ...rest) {
  return ['routes', encodeURIComponent(route), ...rest].join('/')
}
