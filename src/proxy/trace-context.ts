// W3C Trace Context level 1 (https://www.w3.org/TR/trace-context/): weir is one hop of the
// trace. A valid incoming traceparent keeps its trace id and flags and gets weir's own span id as
// the parent id upstream, tracestate passed on as it is; an invalid or absent one starts a new
// trace (when `tracing.generate` is on), and then any tracestate is dropped.

import { randomFillSync } from 'node:crypto'

/** Where a request's trace stands, on its exchange (exchange.ts). */
export interface TraceFields {
  /** 32 lower-case hex digits; '' when the request carries no trace. */
  traceId: string
  /** weir's own span id: the parent id the upstream receives (16 hex digits; '' when none). */
  spanId: string
  /** The client's parent id (16 hex digits), or '' when weir started the trace or there is none. */
  parentSpanId: string
  /** Two hex digits, as received (version 00) or the sampled bit alone (a later version). */
  traceFlags: string
}

/** Random bytes drawn 4 KiB at a time: one crypto call per 256 span ids, not one per request. */
const pool = Buffer.allocUnsafe(4096)
let offset = pool.length

function randomHex (bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const hex = pool.toString('hex', offset, offset + bytes)
  offset += bytes
  return hex
}

const ZERO_SPAN = '0000000000000000'
const ZERO_TRACE = ZERO_SPAN + ZERO_SPAN

/** A new span id (8 random bytes, never all zeros, which the spec makes invalid). */
export function newSpanId (): string {
  let id = randomHex(8)
  while (id === ZERO_SPAN) id = randomHex(8)
  return id
}

/** A new trace id (16 random bytes, never all zeros). */
export function newTraceId (): string {
  let id = randomHex(16)
  while (id === ZERO_TRACE) id = randomHex(16)
  return id
}

/** Lower-case hex digits only, from `start` to `end` (the spec forbids upper case). */
function isHex (value: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = value.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false
  }
  return true
}

/**
 * Whether a traceparent value parses (level 1, §3.2): version-trace_id-parent_id-flags, lower-case
 * hex, version not ff, ids not all zeros; version 00 is exactly 55 characters, a later version at
 * least 55 with a '-' after the flags when longer. Two traceparent headers arrive joined by ", "
 * and fail the length test: that restarts the trace too.
 */
export function isValidTraceparent (value: string): boolean {
  const length = value.length
  if (length < 55 || !isHex(value, 0, 2) || value.startsWith('ff')) return false
  if (value.startsWith('00') ? length !== 55 : length > 55 && value.charCodeAt(55) !== 45) return false
  return value.charCodeAt(2) === 45 && value.charCodeAt(35) === 45 && value.charCodeAt(52) === 45 &&
    isHex(value, 3, 35) && isHex(value, 36, 52) && isHex(value, 53, 55) &&
    value.slice(3, 35) !== ZERO_TRACE && value.slice(36, 52) !== ZERO_SPAN
}

/**
 * Fills `out` from the client's traceparent and writes the headers the upstream gets: the same
 * trace id, a new parent id (weir's span), the flags; tracestate left as the client sent it. An
 * invalid or missing traceparent is a new trace when `generate` (sampled, flags 01, so tracers
 * that follow their parent's decision keep recording), else neither header goes upstream.
 */
export function propagateTrace (headers: Record<string, string | string[] | undefined>, incoming: string | undefined, out: TraceFields, generate: boolean): void {
  if (incoming !== undefined && isValidTraceparent(incoming)) {
    out.traceId = incoming.slice(3, 35)
    out.parentSpanId = incoming.slice(36, 52)
    // Version 00's flags pass as they are; of a later version's, only the sampled bit means anything to a 00 hop.
    out.traceFlags = incoming.startsWith('00') ? incoming.slice(53, 55) : (Number.parseInt(incoming.slice(53, 55), 16) & 1) === 1 ? '01' : '00'
  } else {
    // The spec: a vendor that cannot parse traceparent must not use tracestate either.
    if (headers.tracestate !== undefined) headers.tracestate = undefined
    if (!generate) {
      if (headers.traceparent !== undefined) headers.traceparent = undefined
      return
    }
    out.traceId = newTraceId()
    out.parentSpanId = ''
    out.traceFlags = '01'
  }
  out.spanId = newSpanId()
  headers.traceparent = '00-' + out.traceId + '-' + out.spanId + '-' + out.traceFlags
}

/**
 * The traceparent of a copy of a request (the shadow's), from the one weir sent its primary: the
 * same trace and flags, a span id of its own (the copy is weir's second call, a sibling span).
 */
export function siblingTraceparent (primary: string): string {
  return primary.slice(0, 36) + newSpanId() + primary.slice(52)
}
