// HTTP to weir's admin API for the admin commands: JSON in and out, the bearer token, and every
// way a call can go wrong turned into a CliError with its exit code and a message that says
// what to do (unreachable, the token refused, the API's own refusal with its code).

import { request } from 'undici'
import { CliError, EXIT, usageError } from './exit-codes.ts'

export interface AdminClient {
  /** The base URL, as given (no trailing slash). */
  readonly url: string
  get<T> (path: string): Promise<T>
  /** A write (`PUT`, `POST`): always sent as JSON, `{}` when there is no body. */
  send<T> (method: 'PUT' | 'POST', path: string, body?: unknown, headers?: Record<string, string>): Promise<T>
}

export interface AdminClientOptions {
  url: string
  token: string | undefined
  /** Per call: connect, headers and body each (default 10 s). */
  timeoutMs?: number
}

interface ApiError { error?: unknown; message?: unknown }

export function createAdminClient (options: AdminClientOptions): AdminClient {
  const base = options.url.replace(/\/+$/, '')
  let parsed: URL
  try {
    parsed = new URL(base)
  } catch {
    throw usageError(`--admin: not a URL: ${JSON.stringify(options.url)}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw usageError(`--admin: must be an http:// or https:// URL, not ${JSON.stringify(options.url)}`)
  const timeout = options.timeoutMs ?? 10_000
  const auth: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }

  const call = async <T>(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<T> => {
    let response
    try {
      response = await request(base + path, {
        method: method as 'GET',
        headers: { accept: 'application/json', ...auth, ...headers },
        ...(body === undefined ? {} : { body }),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout * 2),
      })
    } catch (err) {
      throw new CliError(EXIT.unreachable, `cannot reach the admin API at ${base}: ${transportReason(err)}`)
    }
    let text: string
    try {
      text = await response.body.text()
    } catch (err) {
      throw new CliError(EXIT.unreachable, `the admin API at ${base} stopped answering: ${transportReason(err)}`)
    }
    const status = response.statusCode
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch {
      throw new CliError(EXIT.failed, `${base}${path} answered ${status} with something other than JSON: is --admin weir's admin address?`)
    }
    if (status === 401) {
      const hint = options.token === undefined ? 'the admin API needs a token (401)' : 'the admin API refused the token (401)'
      throw new CliError(EXIT.unauthorized, `${hint}: set WEIR_ADMIN_TOKEN or --token`, 'WEIR_ERR_ADMIN_UNAUTHORIZED')
    }
    if (status >= 400) throw refusal(status, json)
    return json as T
  }

  return {
    url: base,
    get: (path) => call('GET', path, undefined, {}),
    send: (method, path, body, headers = {}) => call(method, path, JSON.stringify(body ?? {}), { 'content-type': 'application/json', ...headers }),
  }
}

/** `connect ECONNREFUSED`, `getaddrinfo ENOTFOUND`, or the error's own message and code. */
function transportReason (err: unknown): string {
  const e = err as { code?: unknown; syscall?: unknown; message?: unknown; cause?: unknown; name?: unknown }
  const cause = (e.cause ?? null) as typeof e | null
  const inner = typeof e.code === 'string' || cause === null ? e : cause
  if (typeof inner.syscall === 'string' && typeof inner.code === 'string') return `${inner.syscall} ${inner.code}`
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no answer in time'
  const message = typeof inner.message === 'string' ? inner.message : String(err)
  return typeof inner.code === 'string' && !message.includes(inner.code) ? `${message} (${inner.code})` : message
}

/** The API's refusal: `refused (409 WEIR_ERR_…): message` (the message names every field at fault). */
function refusal (status: number, json: unknown): CliError {
  const body = (typeof json === 'object' && json !== null ? json : {}) as ApiError
  const code = typeof body.error === 'string' ? body.error : undefined
  const message = typeof body.message === 'string' ? body.message : 'no message'
  const what = status >= 500 ? 'the admin API failed' : 'refused'
  return new CliError(EXIT.failed, `${what} (${status}${code === undefined ? '' : ' ' + code}): ${message}`, code)
}
