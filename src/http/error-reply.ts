// The one writer of error replies for both apps (proxy and admin; through fastify, or on the raw
// response of a forwarded request), and the one mapper of errors fastify raises (body too large,
// bad media type, other 4xx, bugs) to weir's codes.

import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ERRORS, WeirError, errorBody, type ErrorCode } from '../errors.ts'

const JSON_TYPE = 'application/json; charset=utf-8'

/** Sends `{error, message, ...extra, requestId}` with the code's status, through fastify. */
export function sendError (reply: FastifyReply, code: ErrorCode, message?: string, extra?: Readonly<Record<string, unknown>>): FastifyReply {
  return reply.code(ERRORS[code].status).header('content-type', JSON_TYPE).send(errorBody(code, reply.request.id, message, extra))
}

/** The same reply written on the raw response, for a request the proxy forwards itself (fastify's reply is hijacked). */
export function writeErrorResponse (res: ServerResponse, code: ErrorCode, requestId: string, headers?: Readonly<OutgoingHttpHeaders>): void {
  const body = errorBody(code, requestId)
  res.writeHead(ERRORS[code].status, { ...headers, 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Which of weir's codes an app answers fastify's own client errors with. */
export interface ErrorCodes {
  /** A body over the app's limit (413). */
  readonly tooLarge: ErrorCode
  /** A body of a content type the app has no parser for (415); absent: `invalid`. */
  readonly mediaType?: ErrorCode
  /** Any other client error fastify raises (4xx). */
  readonly invalid: ErrorCode
  /** Whether the reply says what fastify found wrong (the admin API does; the proxy keeps its fixed message). */
  readonly describe: boolean
}

type ErrorLike = Error & { statusCode?: number; code?: string }

/**
 * The fastify error handler of an app: a WeirError answers with its code (and its problems); a
 * fastify client error with the app's codes; anything else is a bug, logged and answered 500.
 * Nothing is written when the response already started.
 */
export function errorHandlerFor (codes: ErrorCodes): (err: FastifyError | ErrorLike, request: FastifyRequest, reply: FastifyReply) => void {
  return function handleError (err, request, reply) {
    if (reply.sent || reply.raw.headersSent) return
    if (err instanceof WeirError) {
      sendError(reply, err.code, err.message, err.problems.length > 0 ? { problems: err.problems } : undefined)
      return
    }
    const e = err as ErrorLike
    if (e.statusCode === 413) {
      sendError(reply, codes.tooLarge)
      return
    }
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' && codes.mediaType !== undefined) {
      sendError(reply, codes.mediaType)
      return
    }
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
      sendError(reply, codes.invalid, codes.describe ? `request: ${e.message}` : undefined)
      return
    }
    request.log.error({ err }, 'unexpected error')
    sendError(reply, 'WEIR_ERR_INTERNAL')
  }
}
