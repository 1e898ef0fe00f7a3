// A client of the admin API for tests: JSON in and out, an optional bearer token.

import { send, type Reply } from './http.ts'

export interface AdminClient {
  /** Sends `body` (an object is JSON-encoded; a string is sent as is) with a JSON content type by default. */
  call (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>
  get (path: string): Promise<Reply>
}

export function adminClient (adminUrl: string, token?: string): AdminClient {
  const auth: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
  return {
    call (method, path, body, headers = {}) {
      const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
      return send(adminUrl + path, {
        method,
        headers: { 'content-type': 'application/json', ...auth, ...headers },
        ...(payload === undefined ? {} : { body: payload }),
      })
    },
    get (path) {
      return send(adminUrl + path, { headers: auth })
    },
  }
}
