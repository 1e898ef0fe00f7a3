// Paced load for bench/run.ts: a true open-loop sender. Request i is due at start + i / rate,
// whether or not earlier ones were answered; it goes out on an idle keep-alive connection (or
// waits for the next one to free up) and its latency runs from its due time, so a stall counts
// for every request it delays (no coordinated omission). Reads an OpenLoopSpec as JSON from
// argv[2]; prints "start" when the warm-up part of the stream ends, then one OpenLoopResult.

import { connect, type Socket } from 'node:net'
import { makeUserIds, runLoadGenerator, type LoadSpec } from './load.ts'
import { percentile } from './median.ts'

export interface OpenLoopSpec {
  url: string
  /** Requests per second. */
  rate: number
  /** Seconds of sending measured, after `warmup` seconds at the same rate on the same connections (not counted); answers still owed then get DRAIN_MS more. */
  duration: number
  warmup: number
  /** Keep-alive connections opened up front; more requests than that in flight wait for one. */
  connections: number
  mode: LoadSpec['mode']
  userIds: number
  cookie?: string
}

export interface OpenLoopResult {
  /** Requests due over the measured run, and their answers received (any status). */
  scheduled: number
  requests: number
  /** Answers per second from the first measured request's due time to the last answer (or the end of sending, if later). */
  reqPerSec: number
  durationSec: number
  /** ms from each request's due time to the end of its answer: the figures to report. */
  latencyP50: number
  latencyP90: number
  latencyP99: number
  latencyP999: number
  latencyMax: number
  latencyMean: number
  /** ms from the actual write to the end of the answer (what a closed-loop tool would report). */
  serviceP50: number
  serviceP99: number
  /** ms from due time to the write: the sender's own lateness plus waiting for a free connection. */
  sendLagP50: number
  sendLagP99: number
  sendLagMax: number
  /** ms by which each timer tick came after the due time of the oldest request it sent: the sender's own lateness alone. */
  tickLagP50: number
  tickLagP99: number
  tickLagMax: number
  /** Peak number of requests in flight at once during the measured run (= connections: some had to wait for one). */
  peakInFlight: number
  /** Requests lost with their connection, and failed reconnects. */
  errors: number
  /** Requests never answered within DRAIN_MS of the end (neither in requests nor in latencies; errors are not either). */
  timeouts: number
  non2xx: number
  /** Answers carrying a Set-Cookie. */
  setCookie: number
  reconnects: number
  loadCpuMs: number
}

/** How long answers still owed at the end of the run are waited for. */
const DRAIN_MS = 5000

interface Conn {
  socket: Socket
  /** Index of the request in flight on it, or -1 when idle. */
  request: number
  sentAt: number
  pending: Buffer | null
}

interface Answer { end: number; status: number; close: boolean; setCookie: boolean }

/** Where the answer at the start of `buf` ends (and what it says), or null while not all of it is here. */
export function responseEnd (buf: Buffer): Answer | null {
  const headEnd = buf.indexOf('\r\n\r\n')
  if (headEnd === -1) return null
  const head = buf.toString('latin1', 0, headEnd).toLowerCase()
  const status = Number(head.slice(9, 12))
  const close = /\r\nconnection:[ \t]*close/.test(head)
  const setCookie = head.includes('\r\nset-cookie:')
  const length = /\r\ncontent-length:[ \t]*(\d+)/.exec(head)
  const bodyStart = headEnd + 4
  if (length !== null) {
    const end = bodyStart + Number(length[1])
    return buf.length >= end ? { end, status, close, setCookie } : null
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    let at = bodyStart
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at)
      if (lineEnd === -1) return null
      const size = parseInt(buf.toString('latin1', at, lineEnd), 16)
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(buf.toString('latin1', at, lineEnd))}`)
      if (size === 0) {
        // The last chunk, then trailers (none expected) and an empty line.
        const trailersEnd = buf.indexOf('\r\n\r\n', lineEnd)
        return trailersEnd === -1 ? null : { end: trailersEnd + 4, status, close, setCookie }
      }
      at = lineEnd + 2 + size + 2
      if (buf.length < at) return null
    }
  }
  // Bodyless answers; anything delimited by closing the connection is not expected here.
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { end: bodyStart, status, close, setCookie }
  throw new Error(`answer ${status} has neither content-length nor chunked encoding`)
}

/** Each request's bytes, built up front so the sender does the same little work in every scenario. */
function requestBuffers (spec: OpenLoopSpec, host: string): Buffer[] {
  const start = `GET / HTTP/1.1\r\nhost: ${host}\r\n`
  if (spec.mode === 'user-id') return makeUserIds(spec.userIds).map((id) => Buffer.from(`${start}x-user-id: ${id}\r\n\r\n`, 'latin1'))
  return [Buffer.from(spec.mode === 'cookie' ? `${start}cookie: ${spec.cookie ?? ''}\r\n\r\n` : `${start}\r\n`, 'latin1')]
}

export function openLoop (spec: OpenLoopSpec, start: () => void = () => {}): Promise<OpenLoopResult> {
  const url = new URL(spec.url)
  const port = Number(url.port)
  const buffers = requestBuffers(spec, url.host)
  /** Requests 0 .. first - 1 are the warm-up; first .. total - 1 are measured. */
  const first = Math.round(spec.rate * spec.warmup)
  const measured = Math.max(1, Math.round(spec.rate * spec.duration))
  const total = first + measured
  const interval = 1000 / spec.rate
  const latency = new Float64Array(measured)
  const service = new Float64Array(measured)
  const sendLag = new Float64Array(measured)
  const tickLag: number[] = []
  let answered = 0
  let sentCount = 0
  let lost = 0
  let errors = 0
  let non2xx = 0
  let setCookie = 0
  let reconnects = 0
  let inFlight = 0
  let peakInFlight = 0
  const live = new Set<Conn>()
  const idle: Conn[] = []
  let done = false
  /** Requests due while every connection was busy, oldest first (a ring would do; the head index keeps shift O(1)). */
  const waiting: number[] = []
  let waitingHead = 0
  let t0 = 0
  let lastAnswerAt = 0
  let next = 0
  let finish: () => void = () => {}
  let cpuBefore = process.cpuUsage()

  const due = (i: number): number => t0 + i * interval

  function send (conn: Conn, i: number): void {
    conn.request = i
    conn.sentAt = performance.now()
    if (i >= first) sendLag[sentCount++] = conn.sentAt - due(i)
    inFlight++
    if (i >= first && inFlight > peakInFlight) peakInFlight = inFlight
    conn.socket.write(buffers[i % buffers.length] as Buffer)
  }

  /** A connection is free: it takes the oldest waiting request, or goes idle. */
  function release (conn: Conn): void {
    conn.request = -1
    if (waitingHead < waiting.length) send(conn, waiting[waitingHead++] as number)
    else idle.push(conn)
    if (next >= total && inFlight === 0 && waitingHead >= waiting.length) finish()
  }

  function settle (conn: Conn, status: number, cookie: boolean): void {
    const now = performance.now()
    const i = conn.request
    inFlight--
    if (i < first) return
    lastAnswerAt = now
    latency[answered] = now - due(i)
    service[answered] = now - conn.sentAt
    answered++
    if (status < 200 || status > 299) non2xx++
    if (cookie) setCookie++
  }

  function open (): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port, noDelay: true })
      const conn: Conn = { socket, request: -1, sentAt: 0, pending: null }
      let connected = false
      socket.once('connect', () => {
        connected = true
        live.add(conn)
        resolve(conn)
      })
      // A socket error is followed by 'close', which accounts for the request.
      socket.on('error', (err) => { if (!connected) reject(err) })
      socket.on('data', (chunk: Buffer) => {
        let buf = conn.pending === null ? chunk : Buffer.concat([conn.pending, chunk])
        for (;;) {
          const r = responseEnd(buf)
          if (r === null) break
          if (conn.request === -1) throw new Error('an answer arrived with no request in flight')
          settle(conn, r.status, r.setCookie)
          buf = buf.subarray(r.end)
          if (r.close) {
            replace(conn)
            return
          }
          release(conn)
        }
        conn.pending = buf.length === 0 ? null : buf
      })
      socket.on('close', () => {
        if (conn.request !== -1) {
          // Lost with its connection: an error, not a latency.
          if (conn.request >= first) lost++
          inFlight--
          conn.request = -1
        }
        replace(conn)
      })
    })
  }

  /** Swaps a closed (or closing) connection for a new one, which then serves the waiting requests. */
  function replace (conn: Conn): void {
    live.delete(conn)
    const at = idle.indexOf(conn)
    if (at !== -1) idle.splice(at, 1)
    conn.socket.removeAllListeners('close')
    conn.socket.destroy()
    reopen()
  }

  function reopen (): void {
    if (done) return
    reconnects++
    open().then(release, () => {
      if (next >= first) errors++
      setTimeout(reopen, 10)
    })
  }

  function tick (): void {
    const now = performance.now()
    if (next >= first && next < total && due(next) <= now) tickLag.push(now - due(next))
    while (next < total && due(next) <= now) {
      if (next === first) {
        start()
        cpuBefore = process.cpuUsage()
      }
      const conn = idle.shift()
      if (conn === undefined) waiting.push(next)
      else send(conn, next)
      next++
    }
    // Node's timers fire on whole milliseconds: requests due in between go out together at the next tick.
    if (next < total) setTimeout(tick, Math.max(0, due(next) - performance.now()))
    else if (inFlight === 0 && waitingHead >= waiting.length) finish()
  }

  return new Promise<OpenLoopResult>((resolve, reject) => {
    Promise.all(Array.from({ length: spec.connections }, open)).then((conns) => {
      idle.push(...conns)
      const drain = setTimeout(() => finish(), (spec.warmup + spec.duration) * 1000 + DRAIN_MS)
      finish = () => {
        finish = () => {}
        done = true
        clearTimeout(drain)
        // Through the last answer: a proxy that falls behind shows a rate below the one sent.
        const durationSec = (Math.max(Math.min(performance.now(), due(total)), lastAnswerAt) - due(first)) / 1000
        for (const c of live) {
          c.socket.removeAllListeners('close')
          c.socket.destroy()
        }
        resolve(summarize(durationSec))
      }
      t0 = performance.now()
      tick()
    }, reject)
  })

  function summarize (durationSec: number): OpenLoopResult {
    const lat = latency.slice(0, answered).sort()
    const svc = service.slice(0, answered).sort()
    const lag = sendLag.slice(0, sentCount).sort()
    const ticks = Float64Array.from(tickLag).sort()
    let sum = 0
    for (const v of lat) sum += v
    const cpu = process.cpuUsage(cpuBefore)
    return {
      scheduled: measured,
      requests: answered,
      reqPerSec: Math.round(answered / durationSec),
      durationSec: Math.round(durationSec * 1000) / 1000,
      latencyP50: percentile(lat, 50),
      latencyP90: percentile(lat, 90),
      latencyP99: percentile(lat, 99),
      latencyP999: percentile(lat, 99.9),
      latencyMax: percentile(lat, 100),
      latencyMean: answered === 0 ? 0 : Math.round((sum / answered) * 1000) / 1000,
      serviceP50: percentile(svc, 50),
      serviceP99: percentile(svc, 99),
      sendLagP50: percentile(lag, 50),
      sendLagP99: percentile(lag, 99),
      sendLagMax: percentile(lag, 100),
      tickLagP50: percentile(ticks, 50),
      tickLagP99: percentile(ticks, 99),
      tickLagMax: percentile(ticks, 100),
      peakInFlight,
      errors: lost + errors,
      timeouts: measured - answered - lost,
      non2xx,
      setCookie,
      reconnects,
      loadCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    }
  }
}

if (import.meta.main) runLoadGenerator('open-loop', openLoop, true)
