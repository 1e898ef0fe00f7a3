// GET /healthz, /readyz and /metrics: what probes and Prometheus read, served alike on the admin
// address and on the ops address (config `ops`), from one registry and one readiness flag.

import type { FastifyInstance } from 'fastify'
import type { Metrics } from '../metrics/registry.ts'

export interface ProbeOptions {
  metrics: Metrics
  /** Read per call: readiness turns 503 as soon as draining starts. */
  isDraining: () => boolean
  /** Awaited before /metrics renders: with workers, collects their latest readings. */
  beforeScrape?: (() => Promise<void>) | undefined
}

export function registerProbes (app: FastifyInstance, { metrics, isDraining, beforeScrape }: ProbeOptions): void {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    // A load balancer polling readiness stops sending new connections while we drain.
    if (isDraining()) return reply.code(503).send({ status: 'draining' })
    return { status: 'ready' }
  })
  app.get('/metrics', async (_request, reply) => {
    await beforeScrape?.()
    reply.header('content-type', metrics.registry.contentType)
    return await metrics.registry.metrics()
  })
}
