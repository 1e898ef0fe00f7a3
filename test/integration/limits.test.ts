// Request limits and malformed input are answered by the proxy itself, as JSON (docs/proxying.md),
// without troubling the upstream; large and 100-continue uploads stream through intact.

import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { eventually, openSocket, readUntilClose, startCountingUpstream, type CountingUpstream } from '../helpers/raw-http.ts'

/** Routes: /small accepts bodies of at most 1 KiB; everything else the default (10 MiB). Headers at most 2048 bytes. */
async function setup (t: Test): Promise<{ proxy: TestProxy; upstream: CountingUpstream }> {
  const upstream = await startCountingUpstream()
  const proxy = await startProxy(configDoc([
    { name: 'small', match: { pathPrefix: '/small' }, upstreams: { stable: upstream.url }, maxBodyBytes: '1kb' },
    { name: 'app', upstreams: { stable: upstream.url } },
  ], { maxHeaderBytes: 2048 }))
  t.teardown(async () => {
    await proxy.close()
    await upstream.close()
  })
  return { proxy, upstream }
}

function errorCode (body: string): unknown {
  return (JSON.parse(body) as { error?: unknown }).error
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** A deterministic, non-repeating-looking body of `size` bytes. */
function bodyOf (size: number, seed: number): Buffer {
  const out = Buffer.alloc(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

interface StreamedReply { status: number; body: string; continued: boolean }

t.test('a Content-Length above the route\'s maxBodyBytes is answered 413 JSON and never reaches the upstream', async (t) => {
  const { proxy, upstream } = await setup(t)
  const reply = await send(`${proxy.url}/small/upload`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: bodyOf(2048, 1),
  })
  t.equal(reply.status, 413)
  t.match(reply.headers['content-type'], /^application\/json/)
  t.equal(errorCode(reply.body), 'WEIR_ERR_BODY_TOO_LARGE')
  t.equal(reply.headers.connection, 'close', 'the connection is not reused: its unread body is still on it')
  t.equal(reply.headers['x-weir-version'], 'stable', 'like every error of a routed request, it names the version')

  const fits = await send(`${proxy.url}/small/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bodyOf(1024, 2) })
  t.equal(fits.status, 200, 'a body of exactly maxBodyBytes is proxied')
  t.same(upstream.seen.map((s) => s.bytes), [1024], 'the upstream only ever saw the body that fits')
})

t.test('a chunked body that grows past maxBodyBytes is answered 413 and its upstream request is aborted', async (t) => {
  const { proxy, upstream } = await setup(t)
  // The limit is passed at the third chunk.
  const reply = await trickleUpload(t, `${proxy.url}/small/upload`)
  t.ok(reply.ended, 'the response ended normally')
  t.equal(reply.status, 413)
  t.equal(errorCode(reply.body), 'WEIR_ERR_BODY_TOO_LARGE')
  t.equal(reply.connection, 'close')
  t.ok(await eventually(() => upstream.seen[0]?.abortedAt != null, 2000), 'the upstream request was aborted')
  t.equal(upstream.seen.length, 1, 'the upstream saw one request')
  t.ok((upstream.seen[0]?.bytes ?? Infinity) <= 1024, `the upstream got at most maxBodyBytes (${upstream.seen[0]?.bytes} bytes)`)
  t.equal(upstream.seen[0]?.complete, false, 'the upstream never saw the body end')
})

t.test('a chunked body that grows past maxBodyBytes after the upstream started answering cuts the connection', async (t) => {
  // An upstream that answers as soon as a request arrives, then finishes when the body ends.
  let upstreamBytes = 0
  let upstreamAborted = false
  const sockets = new Set<Socket>()
  const early: Server = createServer((req: IncomingMessage, res) => {
    req.on('data', (chunk: Buffer) => { upstreamBytes += chunk.length })
    req.on('error', () => {})
    req.on('close', () => { if (!req.complete) upstreamAborted = true })
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('started\n')
    req.on('end', () => res.end('done\n'))
  })
  early.on('connection', (s: Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve))
  const proxy = await startProxy(configDoc([{
    name: 'early', upstreams: { stable: `http://127.0.0.1:${(early.address() as AddressInfo).port}` }, maxBodyBytes: '1kb',
  }]))
  t.teardown(async () => {
    await proxy.close()
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => early.close(() => resolve()))
  })

  const outcome = await trickleUpload(t, `${proxy.url}/upload`)
  t.equal(outcome.status, 200, 'the client had the upstream\'s status before the limit was passed')
  t.equal(outcome.body, 'started\n', 'the client got what the upstream had sent, and nothing more')
  t.ok(outcome.aborted && !outcome.ended, 'the response was cut, not ended as if complete')
  t.ok(await eventually(() => upstreamAborted, 2000), 'the upstream request was aborted')
  t.ok(upstreamBytes <= 1024, `the upstream got at most maxBodyBytes (${upstreamBytes} bytes)`)
})

t.test('headers larger than maxHeaderBytes are answered 431 JSON and never reach the upstream', async (t) => {
  const { proxy, upstream } = await setup(t)
  const reply = await send(`${proxy.url}/big-headers`, { headers: { 'x-padding': 'p'.repeat(4000) } })
  t.equal(reply.status, 431)
  t.match(reply.headers['content-type'], /^application\/json/)
  t.equal(errorCode(reply.body), 'WEIR_ERR_HEADERS_TOO_LARGE')
  t.notMatch(reply.body, /127\.0\.0\.1|at .*\.ts/, 'the error reveals no address or stack')

  const ok = await send(`${proxy.url}/modest-headers`, { headers: { 'x-padding': 'p'.repeat(1000) } })
  t.equal(ok.status, 200, 'headers within the limit are proxied')
  t.same(upstream.seen.map((s) => s.url), ['/modest-headers'], 'only the request within the limit reached the upstream')
})

t.test('a malformed request line is answered 400 JSON', async (t) => {
  const { proxy, upstream } = await setup(t)
  for (const line of ['THIS IS NOT HTTP', 'GET /a b c HTTP/1.1', 'GET / HTTP/9.9']) {
    const socket = await openSocket(proxy.port)
    t.teardown(() => { socket.destroy() })
    const reply = readUntilClose(socket, 3000)
    socket.write(`${line}\r\nHost: app.test\r\n\r\n`)
    const response = await reply
    t.equal(response?.status, 400, `${JSON.stringify(line)} → 400`)
    t.match(response?.headers['content-type'], /^application\/json/)
    t.equal(errorCode(response?.body ?? '{}'), 'WEIR_ERR_BAD_REQUEST')
  }
  t.equal(upstream.seen.length, 0, 'nothing reached the upstream')
})

/**
 * POSTs `body` in 64 KiB writes. With `expectContinue`, sends `Expect: 100-continue` and holds
 * the body until 100 Continue arrives (or 1 s passes, as curl does). `pauseAfter` bytes in, it
 * waits for `resume()` before sending the rest.
 */
function upload (url: string, body: Buffer, contentType: string, options: { expectContinue?: boolean; pauseAfter?: number; resume?: () => Promise<void> } = {}): Promise<StreamedReply> {
  return new Promise((resolve, reject) => {
    let continued = false
    const headers: Record<string, string | number> = { 'content-type': contentType, 'content-length': body.length }
    if (options.expectContinue === true) headers.expect = '100-continue'
    const req = httpRequest(url, { method: 'POST', agent: false, headers }, (res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => { text += chunk.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, continued }))
      res.on('error', reject)
    })
    req.on('error', reject)
    let started = false
    const writeBody = async (): Promise<void> => {
      if (started) return
      started = true
      for (let offset = 0; offset < body.length; offset += 65536) {
        if (options.pauseAfter !== undefined && offset === options.pauseAfter && options.resume !== undefined) await options.resume()
        if (!req.write(body.subarray(offset, offset + 65536))) await new Promise((resolve) => req.once('drain', resolve))
      }
      req.end()
    }
    if (options.expectContinue === true) {
      req.on('continue', () => {
        continued = true
        void writeBody().catch(reject)
      })
      const fallback = setTimeout(() => { void writeBody().catch(reject) }, 1000)
      req.once('close', () => clearTimeout(fallback))
      req.flushHeaders()
    } else {
      void writeBody().catch(reject)
    }
  })
}

t.test('an Expect: 100-continue upload of 200 KB gets 100 Continue and reaches the upstream intact', async (t) => {
  const { proxy, upstream } = await setup(t)
  const body = bodyOf(200 * 1024, 3)
  const reply = await upload(`${proxy.url}/upload`, body, 'application/octet-stream', { expectContinue: true })
  t.equal(reply.status, 200)
  t.ok(reply.continued, 'the client was told 100 Continue')
  t.same(JSON.parse(reply.body), { bytes: body.length, sha256: sha256(body) }, 'the upstream got every byte')
  t.equal(upstream.seen.length, 1)
  t.equal(upstream.seen[0]?.headers.expect, undefined, 'the proxy answered the expectation itself')
})

for (const contentType of ['application/octet-stream', 'text/plain', 'application/json']) {
  t.test(`a 5 MB ${contentType} POST streams to the upstream intact`, async (t) => {
    const { proxy, upstream } = await setup(t)
    const body = bodyOf(5 * 1024 * 1024, 4)
    // After the first MiB, wait until bytes arrive upstream: the proxy does not hold the body back.
    let streamedEarly = false
    const reply = await upload(`${proxy.url}/upload`, body, contentType, {
      pauseAfter: 1024 * 1024,
      resume: async () => {
        streamedEarly = await eventually(() => (upstream.seen[0]?.bytes ?? 0) > 0, 3000)
      },
    })
    t.ok(streamedEarly, 'the upstream was receiving the body before the client had sent it all')
    t.equal(reply.status, 200)
    t.same(JSON.parse(reply.body), { bytes: body.length, sha256: sha256(body) }, 'the upstream got every byte, in order')
    t.equal(upstream.seen.length, 1)
  })
}

interface TrickleReply { status: number; body: string; connection: string | undefined; ended: boolean; aborted: boolean }

/**
 * POSTs a chunked body to `url` in 512-byte chunks 50 ms apart, at most 16 (8 KiB), stopping when
 * the request is destroyed. Resolves with what came back, whether the response ended or broke.
 */
function trickleUpload (t: Test, url: string): Promise<TrickleReply> {
  return new Promise((resolve) => {
    const req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: { 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' },
    }, (res) => {
      let body = ''
      const reply = (ended: boolean): TrickleReply => ({ status: res.statusCode ?? 0, body, connection: res.headers.connection, ended, aborted: !ended })
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve(reply(true)))
      res.on('error', () => resolve(reply(false)))
    })
    // The proxy may cut the connection while chunks are still being written; the response tells.
    req.on('error', () => {})
    let sent = 0
    const timer = setInterval(() => {
      if (req.destroyed || sent === 16) {
        clearInterval(timer)
        if (!req.destroyed) req.end()
        return
      }
      req.write(bodyOf(512, ++sent))
    }, 50)
    t.teardown(() => clearInterval(timer))
  })
}
