// The admin server on its own port (default 127.0.0.1:9901): liveness, readiness, Prometheus
// metrics, the /api/v1 control API (api.ts) and the web dashboard at /ui (ui.ts).

import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { errorHandlerFor, sendError } from '../http/error-reply.ts'
import { requestIdOf } from '../http/request-id.ts'
import type { Metrics } from '../metrics/registry.ts'
import { ADMIN_BODY_LIMIT, adminApi, type AdminApiOptions } from './api.ts'
import { registerProbes } from './probes.ts'
import { adminUi } from './ui.ts'

export interface AdminAppOptions {
  /** The proxy's logger: one log stream, one level (SIGHUP changes both). */
  logger: FastifyBaseLogger
  metrics: Metrics
  /** Read per call: readiness turns 503 as soon as draining starts. */
  isDraining: () => boolean
  /** Awaited before /metrics renders: with workers, collects their latest readings. */
  beforeScrape?: () => Promise<void>
  api: AdminApiOptions
}

export async function createAdminApp ({ logger, metrics, isDraining, beforeScrape, api }: AdminAppOptions): Promise<FastifyInstance> {
  const app = fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ADMIN_BODY_LIMIT,
    // A caller's sane X-Request-Id is kept, so a CLI's or controller's id shows in the event log.
    genReqId: requestIdOf,
  })
  registerProbes(app, { metrics, isDraining, beforeScrape })
  // Outside /api/v1 no endpoint reads a body: drain and ignore any, whatever its type.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => {
    payload.resume()
    payload.once('end', () => done(null, undefined))
    payload.once('error', (err) => done(err, undefined))
  })
  app.setErrorHandler(errorHandlerFor({ tooLarge: 'WEIR_ERR_ADMIN_BODY_TOO_LARGE', mediaType: 'WEIR_ERR_ADMIN_MEDIA_TYPE', invalid: 'WEIR_ERR_ADMIN_INVALID', describe: true }))
  await app.register(adminApi, { ...api, prefix: '/api/v1' })
  // The dashboard's static files (no token: they hold no data; the page calls /api/v1 with one).
  await app.register(adminUi, { logger })
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'WEIR_ERR_ADMIN_NOT_FOUND'))
  return app
}
