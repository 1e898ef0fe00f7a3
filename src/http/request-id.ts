// The id of every request weir handles, proxy or admin: a client's X-Request-Id when it is a sane
// token (so a CLI's or controller's id shows in logs and events), else a fresh UUID.

import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/

export function requestIdOf (raw: IncomingMessage): string {
  const given = raw.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}
