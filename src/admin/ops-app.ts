// The ops server (config `ops`, e.g. 0.0.0.0:9902): only /healthz, /readyz and /metrics, so
// kubelet probes and Prometheus reach weir while the /api/v1 control API stays on loopback.

import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { sendError } from '../http/error-reply.ts'
import { requestIdOf } from '../http/request-id.ts'
import { registerProbes, type ProbeOptions } from './probes.ts'

export interface OpsAppOptions extends ProbeOptions {
  logger: FastifyBaseLogger
}

export function createOpsApp ({ logger, ...probes }: OpsAppOptions): FastifyInstance {
  const app = fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    // No endpoint here reads a body.
    bodyLimit: 1024,
    genReqId: requestIdOf,
  })
  registerProbes(app, probes)
  // No endpoint reads a body: drain and ignore any, whatever its type (as on the admin address).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => {
    payload.resume()
    payload.once('end', () => done(null, undefined))
    payload.once('error', (err) => done(err, undefined))
  })
  // Anything else, /api/v1 included, does not exist on this address.
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'WEIR_ERR_ADMIN_NOT_FOUND'))
  return app
}
