// What a request's head says of its body: none (no Content-Length or Content-Length: 0, and no
// Transfer-Encoding), sized (a Content-Length), or chunked (a Transfer-Encoding without one).
// Shared by the body guard and the shadow copy's eligibility rule.

import type { IncomingHttpHeaders } from 'node:http'

export type AnnouncedBody = 'none' | 'sized' | 'chunked'

export function announcedBody (headers: IncomingHttpHeaders): AnnouncedBody {
  const length = headers['content-length']
  if (length === undefined) return headers['transfer-encoding'] === undefined ? 'none' : 'chunked'
  return length === '0' ? 'none' : 'sized'
}
