// The admin server on its own port (default 127.0.0.1:9901): liveness, readiness and
// Prometheus metrics. The /api/v1 control API joins it with the admin issue (#3).

import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { errorBody } from '../errors.ts'
import type { Metrics } from '../metrics/registry.ts'

export interface AdminAppOptions {
  /** The proxy's logger: one log stream, one level (SIGHUP changes both). */
  logger: FastifyBaseLogger
  metrics: Metrics
  /** Read per call: readiness turns 503 as soon as draining starts. */
  isDraining: () => boolean
}

export async function createAdminApp ({ logger, metrics, isDraining }: AdminAppOptions): Promise<FastifyInstance> {
  const app = fastify({ loggerInstance: logger, logController: new LogController({ disableRequestLogging: true }) })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    // A load balancer polling readiness stops sending new connections while we drain.
    if (isDraining()) return reply.code(503).send({ status: 'draining' })
    return { status: 'ready' }
  })
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType)
    return metrics.registry.metrics()
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).header('content-type', 'application/json; charset=utf-8').send(errorBody('WEIR_ERR_ADMIN_NOT_FOUND', request.id))
  })
  return app
}
