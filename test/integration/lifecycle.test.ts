// The real process (`bin/weir.js`), as an operator runs it (docs/cli.md): draining on SIGTERM,
// reloading on SIGHUP, `weir validate`, and ${ENV} interpolation in config files.

import t from 'tap'
import { writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { closedPort, startUpstream, startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { send, type Reply } from '../helpers/http.ts'
import { eventually, sleep } from '../helpers/raw-http.ts'
import { exitWithin, runWeir, serveWeir, tempDir, waitForOutput, yamlConfig } from '../helpers/weir-process.ts'

function connectOutcome (port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

t.test('SIGTERM lets 50 in-flight slow requests finish with 200, refuses new connections, and exits 0', async (t) => {
  const [upstream] = await startUpstreams(t, 'stable') as [Upstream]
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const timer of timers) clearTimeout(timer) })
  upstream.handle((_req, res) => {
    timers.add(setTimeout(() => { if (!res.destroyed) res.end('slow but done') }, 1000))
  })
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${upstream.url} }`, 'drainTimeout: 10s\n'))
  const { weir, url, port } = await serveWeir(t, file)

  let finished = 0
  const replies = Array.from({ length: 50 }, (_, i) => send(`${url}/slow/${i}`).then(
    (reply) => { finished++; return reply },
    (err: Error) => { finished++; return err }
  ))
  t.ok(await eventually(() => upstream.received.length === 50, 5000), 'all 50 requests reached the upstream')
  const signalledAt = performance.now()
  weir.child.kill('SIGTERM')
  await waitForOutput(weir, /SIGTERM: draining/, 2000)
  await sleep(100)
  t.equal(await connectOutcome(port), 'ECONNREFUSED', 'a new connection after SIGTERM is refused')
  t.equal(finished, 0, 'the refusal came while the 50 requests were still in flight')

  const settled = await Promise.all(replies)
  const statuses = settled.map((r) => r instanceof Error ? r.message : (r as Reply).status)
  t.same(statuses, Array(50).fill(200), 'every in-flight request was answered 200')
  t.ok(settled.every((r) => !(r instanceof Error) && r.body === 'slow but done'), 'with the upstream\'s whole body')
  const exit = await exitWithin(weir, 10_000)
  t.equal(exit?.code, 0, 'the process exited 0')
  t.ok(exit !== null && exit.at - signalledAt >= 800, 'it exited only after the requests finished')
})

t.test('SIGTERM with drainTimeout 500ms and a request stuck for 10 s still exits 0 within 2 s', async (t) => {
  const [upstream] = await startUpstreams(t, 'stable') as [Upstream]
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const timer of timers) clearTimeout(timer) })
  upstream.handle((_req, res) => {
    timers.add(setTimeout(() => { if (!res.destroyed) res.end('too late') }, 10_000))
  })
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `upstreams: { stable: ${upstream.url} }`, 'drainTimeout: 500ms\n'))
  const { weir, url } = await serveWeir(t, file)

  const stuck = send(`${url}/stuck`).then((reply) => `answered ${reply.status}`, (err: Error) => `failed: ${err.message}`)
  t.ok(await eventually(() => upstream.received.length === 1, 5000), 'the request reached the upstream')
  const signalledAt = performance.now()
  weir.child.kill('SIGTERM')
  const exit = await exitWithin(weir, 5000)
  t.not(exit, null, 'the process exited')
  t.equal(exit?.code, 0, 'with code 0')
  const took = (exit?.at ?? Infinity) - signalledAt
  t.ok(took >= 400 && took < 2000, `${took.toFixed(0)} ms after SIGTERM (drain timeout 500 ms)`)
  t.match(await stuck, /^failed/, 'the stuck request was cut, not answered as if complete')
  t.match(weir.output(), /drain timeout reached/, 'the process logged that it cut the remaining requests')
})

t.test('SIGHUP applies a valid changed file and keeps the running config when the file is invalid', async (t) => {
  const [stable, canary, canary2] = await startUpstreams(t, 'stable', 'canary', 'canary-2') as [Upstream, Upstream, Upstream]
  const dir = tempDir()
  const file = join(dir, 'weir.yaml')
  const write = (canaryUrl: string, weights: string): void => writeFileSync(file, yamlConfig(dir, `
    upstreams: { stable: ${stable.url}, canary: ${canaryUrl} }
    weights: { ${weights} }`))
  write(canary.url, 'stable: 100, canary: 0')
  const { weir, url } = await serveWeir(t, file)

  const versions = async (): Promise<string[]> => {
    const out: string[] = []
    for (let i = 0; i < 10; i++) out.push(JSON.parse((await send(`${url}/v`)).body).version)
    return out
  }
  const reloads = (): number => weir.output().match(/SIGHUP: config reloaded/g)?.length ?? 0
  t.same(await versions(), Array(10).fill('stable'), 'at first every request goes to stable')

  write(canary.url, 'stable: 0, canary: 100')
  weir.child.kill('SIGHUP')
  t.ok(await eventually(() => reloads() === 1, 5000), 'the reload was logged')
  t.same(await versions(), Array(10).fill('canary'), 'after SIGHUP with canary at 100 every request goes to canary')

  write(canary2.url, 'stable: 0, canary: 100')
  weir.child.kill('SIGHUP')
  t.ok(await eventually(() => reloads() === 2, 5000), 'the second reload was logged')
  t.same(await versions(), Array(10).fill('canary-2'), 'after SIGHUP with a changed canary upstream requests go to it')

  write(canary.url, 'stable: 90, canary: 9')
  weir.child.kill('SIGHUP')
  const logged = await waitForOutput(weir, /SIGHUP: .*not valid; keeping the running config[^\n]*/, 5000)
  t.match(logged[0], /routes\[0\]\.weights: must sum to 100/, 'the log names the problem with its path')
  t.same(await versions(), Array(10).fill('canary-2'), 'requests are still served by the running config')
  t.equal(reloads(), 2, 'no reload was applied')
  t.equal(weir.child.exitCode, null, 'the process is still running')

  weir.child.kill('SIGTERM')
  t.equal((await exitWithin(weir, 5000))?.code, 0, 'and exits 0 on SIGTERM')
})

/** The `path: reason` lines of a problem listing. */
function problemLines (text: string): string[] {
  return text.split('\n').filter((line) => /^[A-Za-z([][^:\s]*: /.test(line) && !line.startsWith('weir:'))
}

t.test('weir validate prints one "path: reason" line per mistake and exits 1; serve refuses the same file', async (t) => {
  const dir = tempDir()
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, yamlConfig(dir, `
    upstreams: { stable: http://127.0.0.1:3001, canary: http://127.0.0.1:3002 }
    weights: { stable: 90, canary: 9 }
    retries: 3
    timeouts: { connect: fast }`))

  const validate = runWeir(t, ['validate', '--config', file])
  const validated = await exitWithin(validate, 15_000)
  t.equal(validated?.code, 1, 'validate exits 1')
  const lines = validate.output().trim().split('\n')
  t.equal(lines.length, 3, `three lines:\n${validate.output()}`)
  const byPath = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')), line]))
  t.match(byPath.get('routes[0].weights'), /sum to 100/, 'the weights that sum to 99')
  t.match(byPath.get('routes[0].retries'), /unexpected property/, 'the unknown key')
  t.match(byPath.get('routes[0].timeouts.connect'), /duration/, 'the bad duration')

  const serve = runWeir(t, ['serve', '--config', file])
  const served = await exitWithin(serve, 15_000)
  t.equal(served?.code, 1, 'serve exits 1')
  t.same(problemLines(serve.output()).sort(), lines.slice().sort(), 'serve prints the same problems')
  t.notMatch(serve.output(), /listening on/, 'serve never listened')
})

t.test('weir validate accepts the example config/weir.yaml', async (t) => {
  const validate = runWeir(t, ['validate', '--config', 'config/weir.yaml'])
  const exit = await exitWithin(validate, 15_000)
  t.equal(exit?.code, 0, validate.output())
  t.match(validate.output(), /valid/)
})

t.test('${NAME} in a config file is filled from the environment, and an unset one is named', async (t) => {
  const dir = tempDir()
  const file = join(dir, 'env.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: \${TOKEN} }
state: { file: ${join(dir, 'state.json')} }
cookieSecret: \${SECRET_FOR_TEST}
routes:
  - name: app
    upstreams: { stable: http://127.0.0.1:3001 }
`)
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.TOKEN
  delete env.SECRET_FOR_TEST
  delete env.WEIR_ADMIN_TOKEN

  // Characters that would mean something to YAML if pasted into the flow map unquoted.
  const set = runWeir(t, ['validate', '--config', file], { ...env, SECRET_FOR_TEST: 'sixteen-chars-or-more', TOKEN: 'to: k}en, #1' })
  t.equal((await exitWithin(set, 15_000))?.code, 0, `valid with both variables set: ${set.output()}`)

  const unset = runWeir(t, ['validate', '--config', file], env)
  t.equal((await exitWithin(unset, 15_000))?.code, 1, 'invalid with neither set')
  const lines = unset.output().trim().split('\n')
  t.match(lines.find((line) => line.startsWith('cookieSecret:')), /SECRET_FOR_TEST/, 'the cookieSecret line names SECRET_FOR_TEST')
  t.match(lines.find((line) => line.startsWith('admin.token:')), /\bTOKEN\b/, 'the admin.token line names TOKEN')

  const short = runWeir(t, ['validate', '--config', file], { ...env, SECRET_FOR_TEST: 'short', TOKEN: 't' })
  t.equal((await exitWithin(short, 15_000))?.code, 1, 'an interpolated value is validated like a written one')
  t.match(short.output(), /^cookieSecret: /m)
})

t.test('an upstream failure is logged once with its request id; a client hanging up is not a warning', async (t) => {
  const dir = tempDir()
  const slow = await startUpstream('slow')
  slow.handle(() => { /* never answers */ })
  t.teardown(() => slow.close())
  const closed = await closedPort()
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, yamlConfig(dir, `
upstreams: { stable: "${slow.url}", canary: "http://127.0.0.1:${closed}" }
weights: { stable: 100 }
override: { header: x-weir-version }
failover: false`))
  const { weir, url } = await serveWeir(t, file)

  const failed = await send(url + '/', { headers: { 'x-weir-version': 'canary', 'x-request-id': 'log-test-1' } })
  t.equal(failed.status, 502)
  const line = await waitForOutput(weir, /\{[^\n]*"reqId":"log-test-1"[^\n]*\}/, 3000)
  t.match(JSON.parse(line[0]), { level: 40, reqId: 'log-test-1' }, 'a warn line carries the request id')

  await new Promise<void>((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1', () => {
      socket.write('GET /hang HTTP/1.1\r\nHost: x\r\nx-request-id: log-test-2\r\n\r\n')
      setTimeout(() => { socket.destroy(); resolve() }, 200)
    })
  })
  await sleep(300)
  t.notMatch(weir.output(), /log-test-2/, 'the client abort wrote no warning')
})
