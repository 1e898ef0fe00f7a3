// The controller's outbound HTTP: rollout webhooks (POST with a JSON payload, 2xx passes) and the
// blue/green smoke check (GET through weir's own listener with the override set to green).
// Every call is bounded by its timeout, reads the answer to the end and never throws. A webhook
// with a secret is signed: X-Weir-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">.

import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import type { RouteConfig } from '../config/model.ts'
import type { WebhookPlan } from '../rollout/policy.ts'
import { SMOKE_HEADER } from '../routing/smoke.ts'

export interface CallResult {
  ok: boolean
  /** HTTP status, or null when there was no answer. */
  status: number | null
  detail: string
}

/** At most this much of an answer's body is kept for the detail (the rest is read and dropped). */
const DETAIL_BYTES = 200

// For smoke checks that must not verify the certificate (see smokeCheck).
const selfAgent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 1000 })

export const SIGNATURE_HEADER = 'x-weir-signature'

/**
 * The X-Weir-Signature value of `body` sent at `t` (unix seconds): `t=<t>,v1=<hex>`, the HMAC-SHA256
 * of `<t>.<body>` keyed with the secret, so a receiver can check both the body and its age.
 */
export function webhookSignature (secret: string, body: string, t: number): string {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`
}

export interface WebhookCall {
  /** The HMAC key; undefined: unsigned. */
  secret: string | undefined
  /** Sent as X-Weir-Delivery: the same on every attempt of one notification, for receivers to drop repeats. */
  delivery?: string
}

/**
 * POSTs `payload` as JSON to the webhook, signed afresh (a retry gets a new timestamp); 2xx
 * passes, anything else (or no answer in time) fails.
 */
export async function callWebhook (hook: WebhookPlan, payload: unknown, call: WebhookCall): Promise<CallResult> {
  const what = `webhook ${hook.name} (${hook.type})`
  const body = JSON.stringify(payload)
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'weir-controller' }
  if (call.secret !== undefined) headers[SIGNATURE_HEADER] = webhookSignature(call.secret, body, Math.floor(Date.now() / 1000))
  if (call.delivery !== undefined) headers['x-weir-delivery'] = call.delivery
  return exchange(hook.url, { method: 'POST', headers, body }, hook.timeoutMs, what)
}

export interface SmokeTarget {
  /** weir's proxy origin (`http://127.0.0.1:8080`), or null when it does not listen yet. */
  proxyOrigin: string | null
  /** The data path's smoke token: sent as `x-weir-smoke: green <token>`, never logged. */
  smokeToken: string
  route: RouteConfig
  path: string
  timeoutMs: number
}

/**
 * GETs the smoke path the way a tester would reach green before it takes traffic: through
 * weir, with the route's host and the smoke token (accepted as an override on every route,
 * whether the route's own override is off, locked by a secret or by `from`). Before weir
 * listens, green's first upstream is checked directly.
 */
export async function smokeCheck (target: SmokeTarget): Promise<CallResult> {
  const { route, path } = target
  const green = route.upstreams.green?.[0]
  if (green === undefined) return { ok: false, status: null, detail: 'green has no upstream' }
  const headers: Record<string, string> = { 'user-agent': 'weir-smoke', accept: '*/*' }
  let origin: string
  // weir's own listener may have a self-signed certificate; green itself is verified as the
  // route says (its `tls.ca` is not loaded here: such a route should check green through weir).
  let verify = route.tls.rejectUnauthorized
  if (target.proxyOrigin === null) {
    origin = green
  } else {
    verify = false
    origin = target.proxyOrigin
    const host = route.hosts[0]
    if (host !== undefined) headers.host = host.startsWith('*.') ? `smoke${host.slice(1)}` : host
    headers[SMOKE_HEADER] = `green ${target.smokeToken}`
  }
  return exchange(new URL(path, origin).href, { method: 'GET', headers, ...(verify ? {} : { dispatcher: selfAgent }) }, target.timeoutMs, `smoke check GET ${path}`)
}

async function exchange (url: string, options: Parameters<typeof request>[1] & object, timeoutMs: number, what: string): Promise<CallResult> {
  const signal = AbortSignal.timeout(timeoutMs)
  try {
    const res = await request(url, { ...options, signal, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
    let text = ''
    for await (const chunk of res.body) {
      if (text.length < DETAIL_BYTES) text += (chunk as Buffer).toString('utf8')
    }
    const ok = res.statusCode >= 200 && res.statusCode < 300
    const excerpt = text.trim().slice(0, DETAIL_BYTES)
    return { ok, status: res.statusCode, detail: `${what} answered ${res.statusCode}${excerpt === '' ? '' : `: ${excerpt}`}` }
  } catch (err) {
    const reason = signal.aborted ? `no answer within ${timeoutMs} ms` : describe(err)
    return { ok: false, status: null, detail: `${what} failed: ${reason}` }
  }
}

function describe (err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string }
  return e.cause?.code ?? e.code ?? e.message ?? String(err)
}
