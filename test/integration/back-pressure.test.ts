// Back-pressure both ways: a client that stops reading a large download stops the upstream from
// sending (weir does not buffer the response), and the whole body arrives intact once it reads
// again; an upstream that stops reading a large upload stops the client's upload the same way.

import { createHash } from 'node:crypto'
import { createServer, get, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Writable } from 'node:stream'
import t from 'tap'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'

const MiB = 1024 * 1024
const TOTAL = 64 * MiB
const CHUNK = Buffer.alloc(MiB, 7)

/** Writes TOTAL bytes of CHUNKs as fast as `out` drains (counting them in `sent`), then ends it. */
function pumpAll (out: Writable, sent: { bytes: number }): void {
  const pump = (): void => {
    while (sent.bytes < TOTAL) {
      sent.bytes += CHUNK.length
      if (!out.write(CHUNK)) {
        out.once('drain', pump)
        return
      }
    }
    out.end()
  }
  pump()
}

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('a client that stops reading a 64 MiB download holds the upstream back; the body then arrives whole', async (t) => {
  const written = { bytes: 0 }
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) })
    pumpAll(res, written)
  })
  const upstreamUrl = await listen(upstream)
  t.teardown(() => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()) }))
  const proxy = await startProxy(configDoc([{ name: 'big', upstreams: { stable: upstreamUrl } }]))
  t.teardown(() => proxy.close())

  const body = await new Promise<{ bytes: number; sha: string; writtenWhilePaused: number }>((resolve, reject) => {
    get(`${proxy.url}/download`, (res) => {
      res.pause()
      // Long enough for every buffer on the way to fill if nothing held the upstream back.
      setTimeout(() => {
        const writtenWhilePaused = written.bytes
        const hash = createHash('sha256')
        let bytes = 0
        res.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk) })
        res.on('end', () => resolve({ bytes, sha: hash.digest('hex'), writtenWhilePaused }))
        res.on('error', reject)
        res.resume()
      }, 1500)
    }).on('error', reject)
  })
  // Loopback socket buffers on both hops hold a few MiB each; without back-pressure the whole
  // 64 MiB would have been written (and held in weir's memory).
  t.ok(body.writtenWhilePaused < 32 * MiB, `the upstream wrote ${(body.writtenWhilePaused / MiB).toFixed(0)} MiB while the client did not read`)
  t.equal(body.bytes, TOTAL, 'the whole body arrived')
  const expected = createHash('sha256')
  for (let i = 0; i < TOTAL / MiB; i++) expected.update(CHUNK)
  t.equal(body.sha, expected.digest('hex'), 'byte for byte')
})

t.test('an upstream that stops reading a 64 MiB upload holds the client back; the upload then arrives whole', async (t) => {
  let received = 0
  let readingAt = 0
  const upstream = createServer((req, res) => {
    req.pause()
    // The upstream reads nothing for 1.5 s, then everything.
    setTimeout(() => {
      readingAt = received
      req.on('data', (chunk: Buffer) => { received += chunk.length })
      req.on('end', () => { res.writeHead(200, { 'content-type': 'text/plain' }).end(String(received)) })
      req.resume()
    }, 1500)
  })
  const upstreamUrl = await listen(upstream)
  t.teardown(() => new Promise<void>((resolve) => { upstream.closeAllConnections(); upstream.close(() => resolve()) }))
  const proxy = await startProxy(configDoc([{ name: 'up', upstreams: { stable: upstreamUrl }, maxBodyBytes: '128mb', timeouts: { requestBody: '30s' } }]))
  t.teardown(() => proxy.close())

  const sent = { bytes: 0 }
  let sentAfterPause = 0
  const answer = await new Promise<string>((resolve, reject) => {
    const req = request(`${proxy.url}/upload`, { method: 'POST', headers: { 'content-length': String(TOTAL) } }, (res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => { text += chunk.toString() })
      res.on('end', () => resolve(text))
    })
    req.on('error', reject)
    pumpAll(req, sent)
    void sleep(1200).then(() => { sentAfterPause = sent.bytes })
  })
  t.equal(readingAt, 0, 'the upstream had read nothing before it resumed')
  t.ok(sentAfterPause < 32 * MiB, `the client could send ${(sentAfterPause / MiB).toFixed(0)} MiB while the upstream did not read`)
  t.equal(answer, String(TOTAL), 'the whole upload arrived')
})
