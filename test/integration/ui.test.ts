// GET /ui, the dashboard's static files on the admin port: served with their content types and
// strict security headers, without a token, from a fixed table (no path on disk is ever named by
// a URL, so no traversal), and 404 for anything else.

import t, { type Test } from 'tap'
import { request } from 'node:http'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { send, type Reply } from '../helpers/http.ts'
import { startUpstreams } from '../helpers/upstream.ts'

const TOKEN = 'ui-test-token-' + 'x'.repeat(24)

async function setup (t: Test, admin: Record<string, unknown> = { host: '127.0.0.1', port: 0, token: TOKEN }): Promise<TestProxy> {
  const [stable] = await startUpstreams(t, 'stable')
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: stable!.url } }], { admin }))
  t.teardown(() => proxy.close())
  return proxy
}

/** A GET whose path is sent exactly as written (a URL would resolve `..` and re-encode). */
function rawGet (adminUrl: string, path: string): Promise<Reply> {
  const { hostname, port } = new URL(adminUrl)
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function securityHeaders (t: Test, reply: Reply, what: string): void {
  const csp = String(reply.headers['content-security-policy'])
  t.match(csp, /default-src 'self'/, `${what}: CSP default-src 'self'`)
  t.match(csp, /script-src 'self'(;|$)/, `${what}: scripts from this origin only`)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, `${what}: no inline script or eval`)
  t.match(csp, /frame-ancestors 'none'/, `${what}: no framing (CSP)`)
  t.equal(reply.headers['x-frame-options'], 'DENY', `${what}: no framing`)
  t.equal(reply.headers['referrer-policy'], 'no-referrer', `${what}: no referrer`)
  t.equal(reply.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
}

t.test('GET /ui and /ui/ serve the page with strict security headers and no token, though the API needs one', async (t) => {
  const proxy = await setup(t)
  for (const path of ['/ui', '/ui/']) {
    const page = await send(proxy.adminUrl + path)
    t.equal(page.status, 200, path)
    t.equal(page.headers['content-type'], 'text/html; charset=utf-8', path)
    securityHeaders(t, page, path)
    t.match(page.body, /<script type="module" src="\/ui\/app\.js"><\/script>/, 'the app is a module from /ui')
    const scripts = page.body.match(/<script\b[^>]*>/g) ?? []
    t.ok(scripts.length > 0 && scripts.every((s) => / src="/.test(s)), 'no inline script')
    t.notMatch(page.body, /\sstyle=|<style\b|\son[a-z]+=/i, 'no inline style or handler attributes')
  }
  t.equal((await send(proxy.adminUrl + '/api/v1/routes')).status, 401, 'the API still needs the token')
})

t.test('every file the page loads serves with its content type: its stylesheets, its modules and uPlot', async (t) => {
  const proxy = await setup(t)
  const page = (await send(proxy.adminUrl + '/ui')).body
  const linked = [...page.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1] as string)
  t.ok(linked.includes('/ui/vendor/uPlot.min.css'), 'uPlot\'s stylesheet is linked')
  // Walks the module graph from app.js, as the browser will.
  const modules = ['/ui/app.js']
  for (let i = 0; i < modules.length; i++) {
    const path = modules[i] as string
    const reply = await send(proxy.adminUrl + path)
    t.equal(reply.status, 200, path)
    t.equal(reply.headers['content-type'], 'text/javascript; charset=utf-8', path)
    securityHeaders(t, reply, path)
    for (const [, specifier] of reply.body.matchAll(/^import [^'"]*'([^']+)'/gm)) {
      const next = new URL(specifier as string, 'http://x' + path).pathname
      if (!modules.includes(next)) modules.push(next)
    }
  }
  t.ok(modules.includes('/ui/vendor/uPlot.esm.js'), `uPlot is imported from /ui/vendor (${modules.join(', ')})`)
  const uplot = await send(proxy.adminUrl + '/ui/vendor/uPlot.esm.js')
  t.match(uplot.body, /export \{ uPlot as default \}/, 'the vendor file is uPlot\'s ES module')
  for (const path of linked.filter((p) => p.endsWith('.css'))) {
    const reply = await send(proxy.adminUrl + path)
    t.equal(reply.status, 200, path)
    t.equal(reply.headers['content-type'], 'text/css; charset=utf-8', path)
  }
})

t.test('a file is revalidated with its ETag: 304 when unchanged', async (t) => {
  const proxy = await setup(t)
  const first = await send(proxy.adminUrl + '/ui/app.js')
  t.equal(first.headers['cache-control'], 'no-cache')
  const etag = String(first.headers.etag)
  t.match(etag, /^"[A-Za-z0-9_-]+"$/)
  const again = await send(proxy.adminUrl + '/ui/app.js', { headers: { 'if-none-match': etag } })
  t.equal(again.status, 304)
  t.equal(again.body, '')
  t.equal((await send(proxy.adminUrl + '/ui/app.js', { headers: { 'if-none-match': '"other"' } })).status, 200)
})

t.test('unknown /ui paths are JSON 404s, and no path reaches a file outside the table', async (t) => {
  const proxy = await setup(t)
  const paths = [
    '/ui/x', '/ui/vendor/', '/ui/vendor/uPlot.cjs.js', '/ui/vendor/uPlot.d.ts', '/ui/index.htm', '/ui/App.js', '/uix',
    '/ui/../package.json', '/ui/..%2fpackage.json', '/ui/%2e%2e/package.json', '/ui/%2e%2e%2fpackage.json',
    '/ui/%252e%252e%252fpackage.json', '/ui/vendor/../../package.json', '/ui/vendor/..%2f..%2fpackage.json',
    '/ui/vendor/%2e%2e/%2e%2e/src/app.ts', '/ui//etc/passwd', '/ui/%2fetc%2fpasswd', '/ui/..\\package.json',
    '/ui/app.js/..', '/ui/./app.js/../../package.json', '/ui/%00', '/ui/app.js%00.html',
  ]
  for (const path of paths) {
    const reply = await rawGet(proxy.adminUrl, path)
    t.equal(reply.status, 404, path)
    t.equal(reply.json<{ error: string }>().error, 'WEIR_ERR_ADMIN_NOT_FOUND', path)
    t.notMatch(reply.body, /"name": *"weir"|root:|import /, `${path}: no file content`)
  }
  t.equal((await send(proxy.adminUrl + '/ui', { method: 'POST' })).status, 404, 'only GET and HEAD')
  const head = await send(proxy.adminUrl + '/ui', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['x-frame-options'], 'DENY')
})

t.test('without a token the page serves on loopback too (the API answers it without one)', async (t) => {
  const proxy = await setup(t, { host: '127.0.0.1', port: 0 })
  t.equal((await send(proxy.adminUrl + '/ui')).status, 200)
  t.equal((await send(proxy.adminUrl + '/api/v1/routes')).status, 200)
})
