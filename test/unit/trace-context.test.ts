// W3C Trace Context level 1 (src/proxy/trace-context.ts): which traceparent values parse, and
// what goes upstream for each: the same trace with weir's span, or a new trace.

import t from 'tap'
import { isValidTraceparent, newSpanId, newTraceId, propagateTrace, siblingTraceparent, type TraceFields } from '../../src/proxy/trace-context.ts'

const VALID = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
const fields = (): TraceFields => ({ traceId: '', spanId: '', parentSpanId: '', traceFlags: '' })

t.test('traceparent values as the spec defines them', async (t) => {
  t.ok(isValidTraceparent(VALID))
  t.ok(isValidTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'), 'not sampled')
  t.ok(isValidTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds'), 'a later version with more fields')
  t.ok(isValidTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), 'a later version, 55 characters')
  for (const bad of [
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', // upper case
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01', // zero trace id
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01', // zero parent id
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', // version ff
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra', // version 00 is exactly 55
    '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x', // a later version: a dash after the flags
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01', // short trace id
    '00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g',
    VALID + ', ' + VALID, // two headers, joined
    '',
  ]) t.notOk(isValidTraceparent(bad), bad)
})

t.test('a valid traceparent keeps its trace id and flags and gets a new parent id; tracestate is left as it is', async (t) => {
  const headers: Record<string, string | string[] | undefined> = { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' }
  const out = fields()
  propagateTrace(headers, VALID, out, true)
  t.equal(out.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  t.equal(out.parentSpanId, '00f067aa0ba902b7')
  t.match(out.spanId, /^[0-9a-f]{16}$/)
  t.not(out.spanId, '00f067aa0ba902b7')
  t.equal(headers.traceparent, `00-4bf92f3577b34da6a3ce929d0e0e4736-${out.spanId}-01`)
  t.equal(headers.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
})

t.test('a later version goes on as version 00 with the sampled bit alone', async (t) => {
  const headers: Record<string, string | string[] | undefined> = {}
  const out = fields()
  propagateTrace(headers, 'cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-more', out, true)
  t.equal(out.traceFlags, '01')
  t.match(headers.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/)
})

t.test('an invalid or missing traceparent starts a new trace and drops tracestate; with generate off, neither goes upstream', async (t) => {
  for (const incoming of [undefined, 'garbage']) {
    const headers: Record<string, string | string[] | undefined> = { traceparent: incoming, tracestate: 'a=b' }
    const out = fields()
    propagateTrace(headers, incoming, out, true)
    t.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    t.ok(isValidTraceparent(headers.traceparent as string))
    t.equal(out.parentSpanId, '')
    t.equal(headers.tracestate, undefined, 'tracestate dropped')
    const off: Record<string, string | string[] | undefined> = { traceparent: incoming, tracestate: 'a=b' }
    const none = fields()
    propagateTrace(off, incoming, none, false)
    t.equal(off.traceparent, undefined)
    t.equal(off.tracestate, undefined)
    t.equal(none.traceId, '')
  }
})

t.test('ids are random, well-formed and never all zeros; a sibling keeps the trace and flags', async (t) => {
  const spans = new Set<string>()
  for (let i = 0; i < 2000; i++) spans.add(newSpanId())
  t.equal(spans.size, 2000, 'no repeats over several pool refills')
  t.ok([...spans].every((id) => /^(?!0{16})[0-9a-f]{16}$/.test(id)), 'each 16 lower-case hex digits, not all zeros')
  t.match(newTraceId(), /^(?!0{32})[0-9a-f]{32}$/)
  const sibling = siblingTraceparent(VALID)
  t.match(sibling, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/)
  t.not(sibling, VALID)
})
