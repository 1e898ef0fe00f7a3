// Steady client traffic for rollout tests: GETs at a fixed rate over keep-alive connections,
// each with a random user id (so requests spread over every bucket), until stopped or a time
// limit; every answer is kept with the version that served it.

import { request } from 'node:http'
import { keepAliveAgent } from './http.ts'

export interface TrafficResult {
  /** Epoch ms when the answer (or the failure) came. */
  at: number
  status: number | null
  version: string | null
  error: string | null
}

export interface Traffic {
  readonly results: TrafficResult[]
  /** Stops sending, waits for the requests in flight, returns every result. */
  stop (): Promise<TrafficResult[]>
}

export interface TrafficOptions {
  /** Requests per second (default 200). */
  rate?: number
  /** Stops by itself after this long (default 30 s). */
  maxMs?: number
  path?: string
  headers?: Record<string, string>
  /** A header that carries each request's send time (epoch ms), for upstreams to tell when it left. */
  sentAtHeader?: string
}

export function startTraffic (url: string, options: TrafficOptions = {}): Traffic {
  const rate = options.rate ?? 200
  const maxMs = options.maxMs ?? 30_000
  const agent = keepAliveAgent(32)
  const results: TrafficResult[] = []
  const inFlight = new Set<Promise<void>>()
  const began = Date.now()
  let sent = 0
  let stopped = false
  const one = (): Promise<void> => new Promise((resolve) => {
    const req = request(url + (options.path ?? '/'), {
      agent,
      headers: {
        'x-user-id': `u${Math.random().toString(36).slice(2)}`,
        ...options.headers,
        ...(options.sentAtHeader === undefined ? {} : { [options.sentAtHeader]: String(Date.now()) }),
      },
    }, (res) => {
      res.resume()
      res.on('end', () => {
        const version = res.headers['x-weir-version']
        results.push({ at: Date.now(), status: res.statusCode ?? null, version: typeof version === 'string' ? version : null, error: null })
        resolve()
      })
      res.on('error', (err) => {
        results.push({ at: Date.now(), status: res.statusCode ?? null, version: null, error: err.message })
        resolve()
      })
    })
    req.on('error', (err) => {
      results.push({ at: Date.now(), status: null, version: null, error: err.message })
      resolve()
    })
    req.end()
  })
  // Catches up on the schedule each tick, so the rate holds even when timers run late.
  const timer = setInterval(() => {
    const elapsed = Date.now() - began
    if (stopped || elapsed > maxMs) {
      stopped = true
      clearInterval(timer)
      return
    }
    const due = Math.floor((elapsed * rate) / 1000)
    while (sent < due) {
      sent++
      const p = one()
      inFlight.add(p)
      void p.then(() => inFlight.delete(p))
    }
  }, 5)
  return {
    results,
    async stop () {
      stopped = true
      clearInterval(timer)
      await Promise.all([...inFlight])
      agent.destroy()
      return results
    },
  }
}

/** Results that were not a 2xx answer. */
export function failures (results: readonly TrafficResult[]): TrafficResult[] {
  return results.filter((r) => r.status === null || r.status < 200 || r.status >= 300)
}
