// Raw HTTP errors of the proxy listener — a malformed request line, headers over maxHeaderBytes,
// a request head that did not arrive within timeouts.clientHeaders — never reach fastify: they
// are answered here, on the socket, with weir's JSON error and Connection: close.

import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { ERRORS, errorBody, type ErrorCode } from '../errors.ts'

/** Node's clientError code → what the client is told. */
const CLIENT_ERRORS: Readonly<Record<string, ErrorCode>> = {
  HPE_HEADER_OVERFLOW: 'WEIR_ERR_HEADERS_TOO_LARGE',
  // The server's requestTimeout is off (bodies are bounded per route), so this is headersTimeout.
  ERR_HTTP_REQUEST_TIMEOUT: 'WEIR_ERR_HEADERS_TIMEOUT',
}

export function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy()
    return
  }
  const code = (err.code === undefined ? undefined : CLIENT_ERRORS[err.code]) ?? 'WEIR_ERR_BAD_REQUEST'
  const status = ERRORS[code].status
  const body = errorBody(code, randomUUID())
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}
