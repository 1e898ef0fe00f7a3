// The admin commands of `weir` (docs/cli.md) run as real processes against a real weir with
// real upstreams and real traffic: what they print, and the exit code each outcome ends with.

import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { sleep } from '../helpers/raw-http.ts'
import { startTraffic } from '../helpers/traffic.ts'
import { closedPort, startUpstreams, type Upstream } from '../helpers/upstream.ts'
import { NODE, ROOT, WEIR } from '../helpers/weir-process.ts'

interface Run { code: number | null; stdout: string; stderr: string }

/** The environment of a CLI run: none of the caller's admin settings leak in. */
function cleanEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  for (const name of ['WEIR_ADMIN_URL', 'WEIR_ADMIN_TOKEN', 'WEIR_CONFIG', 'NO_COLOR']) if (!(name in extra)) delete env[name]
  return env
}

interface Running { readonly done: Promise<Run>; stdout (): string; stop (): void }

/** Starts `weir <args>`; it must end within `limitMs` (else it is killed and the test fails). */
function start (t: Test, args: string[], env: NodeJS.ProcessEnv = cleanEnv(), limitMs = 20_000): Running {
  const child = spawn(NODE, [WEIR, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => {
    t.fail(`weir ${args.join(' ')} still ran after ${limitMs} ms:\n${stdout}\n${stderr}`)
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL')
  }, limitMs)
  t.teardown(() => {
    clearTimeout(timer)
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL')
  })
  const done = new Promise<Run>((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
  return {
    done,
    stdout: () => stdout,
    stop: () => { if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM') },
  }
}

/** Runs `weir <args>` to its end. */
const cli = (t: Test, args: string[], env?: NodeJS.ProcessEnv): Promise<Run> => start(t, args, env).done

/** Resolves once the running command printed `pattern` on stdout; fails the test after `limitMs`. */
async function printed (t: Test, running: Running, pattern: RegExp, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!pattern.test(running.stdout()) && Date.now() < deadline) await sleep(20)
  t.match(running.stdout(), pattern, `printed ${pattern} within ${limitMs} ms`)
}

const fastPolicy = { steps: [50, 100], interval: '1s', analysis: { minRequests: 10, failureThreshold: 2 } }

async function setup (t: Test, extra: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; stable: Upstream; canary: Upstream; weir: (...args: string[]) => Promise<Run> }> {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{ name: 'app', upstreams: { stable: stable!.url, canary: canary!.url }, rollout: fastPolicy }], extra))
  t.teardown(() => proxy.close())
  return { proxy, stable: stable!, canary: canary!, weir: (...args) => cli(t, ['--admin', proxy.adminUrl, ...args]) }
}

t.test('weir status shows each route with its weights and rollout; -o json adds each route\'s stats', async (t) => {
  const { proxy, weir } = await setup(t)
  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 10_000 })
  t.teardown(() => traffic.stop())
  await sleep(1000)
  const table = await weir('status')
  t.equal(table.code, 0, table.stderr)
  const lines = table.stdout.trim().split('\n')
  t.match(lines[0], /^ROUTE\s+REV\s+ROLLOUT\s+VERSION\s+WEIGHT\s+REQ\/S\s+ERRORS\s+P99 MS$/)
  t.match(lines[1], /^app\s+0\s+idle\s+stable\s+100\s+[0-9.]+\s+0\.00 %\s+[0-9.]+$/, 'the route, its revision, no rollout, stable at 100 with traffic')
  t.match(lines[2], /^\s+canary\s+0\s+0\.0\s/, 'canary at 0 and without traffic')
  const json = await weir('status', '-o', 'json')
  t.equal(json.code, 0, json.stderr)
  const routes = JSON.parse(json.stdout) as { name: string; weights: Record<string, number>; stats: { window: number; versions: Record<string, { requests: number; p99: number | null }> } }[]
  t.equal(routes.length, 1)
  t.equal(routes[0]?.name, 'app')
  t.same(routes[0]?.weights, { stable: 100, canary: 0, green: 0 })
  t.equal(routes[0]?.stats.window, 60)
  t.ok((routes[0]?.stats.versions.stable?.requests ?? 0) > 20, `stable's requests are counted (${routes[0]?.stats.versions.stable?.requests})`)
  await traffic.stop()
})

t.test('set-weights changes the weights; get shows them with the new revision; a stale --if-match is refused', async (t) => {
  const { weir } = await setup(t)
  const set = await weir('set-weights', 'app', 'stable=90', 'canary=10')
  t.equal(set.code, 0, set.stderr)
  t.equal(set.stdout, 'app: stable 90  canary 10  green 0 (revision 1)\n')
  const got = await weir('get', 'app')
  t.equal(got.code, 0, got.stderr)
  t.match(got.stdout, /^weights\s+stable 90 {2}canary 10 {2}green 0$/m)
  t.match(got.stdout, /^revision\s+1 \(live, updated /m)
  t.match(got.stdout, /^rollout\s+no rollout$/m)
  const json = JSON.parse((await weir('get', 'app', '-o', 'json')).stdout) as { weights: Record<string, number>; revision: number }
  t.same(json.weights, { stable: 90, canary: 10, green: 0 })
  t.equal(json.revision, 1)

  const stale = await weir('set-weights', 'app', 'stable=50', 'canary=50', '--if-match', '0')
  t.equal(stale.code, 1, 'a refusal exits 1')
  t.equal(stale.stderr, 'weir: refused (412 WEIR_ERR_ADMIN_STALE_REVISION): If-Match: the route is at revision 1, not 0\n')
  const invalid = await weir('set-weights', 'app', 'stable=95')
  t.equal(invalid.code, 1)
  t.match(invalid.stderr, /^weir: refused \(400 WEIR_ERR_ADMIN_INVALID\): weights: .*sum/)
  const usage = await weir('set-weights', 'app', 'blue=100')
  t.equal(usage.code, 2, 'an unknown version is a usage error')
  t.match(usage.stderr, /blue is not one of stable, canary, green/)
  t.equal(JSON.parse((await weir('get', 'app', '-o', 'json')).stdout).revision, 1, 'nothing refused changed the route')
  const reset = await weir('reset', 'app')
  t.equal(reset.code, 0, reset.stderr)
  t.same(JSON.parse((await weir('get', 'app', '-o', 'json')).stdout).weights, { stable: 100, canary: 0, green: 0 }, 'reset serves the file\'s weights again')
})

t.test('set-upstream, switch, shadow, rollback and rollout start --file each do their write and print the result', async (t) => {
  const { proxy, weir } = await setup(t)
  const [green, mirror] = await startUpstreams(t, 'green', 'shadow')
  const set = await weir('set-upstream', 'app', `green=${green!.url}`, `shadow=${mirror!.url},${green!.url}`)
  t.equal(set.code, 0, set.stderr)
  const admin = adminClient(proxy.adminUrl)
  const route = async () => (await admin.get('/api/v1/routes/app')).json<{ upstreams: Record<string, string[]>; weights: Record<string, number>; shadow: { percent: number; compare: boolean } }>()
  t.same((await route()).upstreams.green, [green!.url])
  const switched = await weir('switch', 'app', '--to', 'green')
  t.equal(switched.stdout, 'app: stable 0  canary 0  green 100 (revision 2)\n', switched.stderr)
  const shadowed = await weir('shadow', 'app', '--percent', '5', '--compare')
  t.equal(shadowed.code, 0, shadowed.stderr)
  t.match((await route()).shadow, { percent: 5, compare: true })
  t.equal((await weir('shadow', 'app', '--no-compare')).code, 0)
  t.match((await route()).shadow, { percent: 5, compare: false }, 'the settings not given stay')
  const back = await weir('rollback', 'app')
  t.equal(back.stdout, 'app: stable 100  canary 0  green 0 (revision 5)\n', back.stderr)
  t.equal((await weir('set-upstream', 'app', 'green=none')).code, 0)
  t.notOk('green' in (await route()).upstreams, 'green=none takes the upstream away')

  const dir = mkdtempSync(join(tmpdir(), 'weir-cli-'))
  writeFileSync(join(dir, 'policy.yaml'), 'steps: [20, 40]\ninterval: 1h\n')
  const started = await weir('rollout', 'start', 'app', '--file', join(dir, 'policy.yaml'), '--steps', '30,60,100', '-o', 'json')
  t.equal(started.code, 0, started.stderr)
  const view = JSON.parse(started.stdout) as { rollout: { steps: number[]; policy: { intervalMs: number } }; weights: Record<string, number> }
  t.same(view.rollout.steps, [30, 60, 100], '--steps over the file')
  t.equal(view.rollout.policy.intervalMs, 3_600_000, 'the interval from the file')
  t.same(view.weights, { stable: 70, canary: 30, green: 0 })
  const promoted = await weir('rollout', 'promote', 'app')
  t.match(promoted.stdout, /progressing, step 2\/3, canary 60 %/, promoted.stderr)
  const paused = await weir('rollout', 'pause', 'app')
  t.match(paused.stdout, /paused, step 2\/3, canary 60 %: paused by local/, paused.stderr)
  t.match((await weir('rollout', 'resume', 'app')).stdout, /progressing, step 2\/3/)
  t.match((await weir('rollout', 'promote', 'app', '--full')).stdout, /promoting|succeeded/)
  const bad = await weir('rollout', 'start', 'app', '--file', join(dir, 'missing.yaml'))
  t.equal(bad.code, 2)
  t.match(bad.stderr, /^weir: --file: cannot read /)
})

t.test('rollout watch follows a healthy canary rollout to its promotion and exits 0', async (t) => {
  const { proxy, canary, weir } = await setup(t)
  const idle = await weir('rollout', 'watch', 'app')
  t.equal(idle.code, 3, 'no rollout to watch: exit 3')
  t.match(idle.stderr, /^weir: route app has no rollout to watch \(phase idle\)/)

  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 30_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  const started = await weir('rollout', 'start', 'app', '--steps', '50,100', '--interval', '1s')
  t.equal(started.code, 0, started.stderr)
  t.match(started.stdout, /^app: canary [0-9a-f]+, progressing, step 1\/2, canary 50 %/)
  const watch = await weir('rollout', 'watch', 'app', '--interval-ms', '200', '--timeout', '25s')
  t.equal(watch.code, 0, `exit 0 on success:\n${watch.stdout}\n${watch.stderr}`)
  const lines = watch.stdout.trim().split('\n')
  t.match(lines.at(-1), /^app: rollout [0-9a-f]+ succeeded \(stable 100 {2}canary 0 {2}green 0\)$/)
  t.match(watch.stdout, /progressing step 2\/2 \[#{20}\] canary 100 %/, 'it showed the second step with a full bar')
  t.match(watch.stdout, /check pass: .*error-rate 0 vs 0\.01 pass/, 'it showed a passed check with its value and threshold')
  t.match(watch.stdout, /event #[0-9]+ rollout\.succeeded by controller/, 'and the route\'s events')
  const status = lines.filter((line) => / \| /.test(line)).map((line) => line.slice(9))
  t.ok(status.length >= 2, `${status.length} status lines`)
  t.ok(status.every((line, i) => i === 0 || line !== status[i - 1]), 'off a terminal, a line only when something changed')
  t.notOk(watch.stdout.includes('\x1b'), 'no colour or cursor codes off a terminal')
  const route = JSON.parse((await weir('get', 'app', '-o', 'json')).stdout) as { upstreams: Record<string, string[]> }
  t.same(route.upstreams.stable, [canary.url], 'promoted: stable took the canary\'s upstream')
  await traffic.stop()
})

t.test('rollout watch follows a canary that starts answering 500 to its revert and exits 1, saying why', async (t) => {
  const { proxy, canary, weir } = await setup(t)
  const traffic = startTraffic(proxy.url, { rate: 100, maxMs: 30_000 })
  t.teardown(() => traffic.stop())
  await sleep(300)
  const started = await weir('rollout', 'start', 'app', '--interval', '2s')
  t.equal(started.code, 0, started.stderr)
  const watch = start(t, ['--admin', proxy.adminUrl, 'rollout', 'watch', 'app', '--interval-ms', '200', '--timeout', '25s'])
  await printed(t, watch, /progressing step 1\/2 /, 10_000)
  canary.handle((_req, res) => {
    res.statusCode = 500
    res.end('broken canary')
  })
  const watched = await watch.done
  t.equal(watched.code, 1, `exit 1 on a revert:\n${watched.stdout}\n${watched.stderr}`)
  // The fast guard or the step's check, whichever sees it first: the reason is the API's.
  const { id, reason } = (await adminClient(proxy.adminUrl).get('/api/v1/routes/app/rollout')).json<{ rollout: { id: string; reason: string } }>().rollout
  t.match(reason, /canary/)
  t.equal(watched.stdout.trim().split('\n').at(-1), `app: rollout ${id} failed: ${reason} (stable 100  canary 0  green 0)`)
  t.match(watched.stdout, /event #[0-9]+ rollout\.failed by controller: .*canary/)
  t.match(watched.stdout, /failed step 1\/2 \[#{10}-{10}\] canary 0 % \| stable 100 {2}canary 0 {2}green 0/)
  await traffic.stop()
})

t.test('a write while a rollout drives the route is refused with the rollout named; an abort ends the watch with 1', async (t) => {
  const { proxy, weir } = await setup(t)
  const started = await weir('rollout', 'start', 'app', '--steps', '50', '--interval', '1h')
  t.equal(started.code, 0, started.stderr)
  const held = await weir('set-weights', 'app', 'stable=100')
  t.equal(held.code, 1)
  const [first, second, third] = held.stderr.trim().split('\n')
  t.match(first, /^weir: refused \(409 WEIR_ERR_ADMIN_ROLLOUT_ACTIVE\): a rollout drives this route/)
  t.match(second, /^ {2}the route is held by the rollout canary [0-9a-f]+, progressing, step 1\/1, canary 50 % \(started by local at /)
  t.match(third, /weir rollout abort app.*--force/)
  const forced = await weir('set-weights', 'app', 'stable=60', 'canary=40', '--force')
  t.equal(forced.code, 0, forced.stderr)

  const watch = start(t, ['--admin', proxy.adminUrl, 'rollout', 'watch', 'app', '--interval-ms', '100', '--timeout', '15s'])
  await printed(t, watch, /progressing step 1\/1 /, 10_000)
  const aborted = await weir('rollout', 'abort', 'app')
  t.equal(aborted.code, 0, aborted.stderr)
  t.match(aborted.stdout, /failed, step 1\/1, canary 0 %: aborted by local/)
  const watched = await watch.done
  t.equal(watched.code, 1, `an aborted rollout exits 1:\n${watched.stdout}`)
  t.match(watched.stdout.trim().split('\n').at(-1), /^app: rollout [0-9a-f]+ failed: aborted by local/)
  const again = await weir('rollout', 'abort', 'app')
  t.equal(again.code, 1, 'nothing left to abort: refused')
  t.match(again.stderr, /^weir: refused \(409 WEIR_ERR_ADMIN_ROLLOUT_STATE\): /)
})

/** util-linux `script`, to run a command on a pseudo-terminal; undefined where it is missing. */
const SCRIPT = ['/usr/bin/script', '/bin/script'].find((path) => existsSync(path))

t.test('on a terminal, rollout watch redraws in place, in colour unless NO_COLOR; --timeout ends it with 6', async (t) => {
  const { proxy, weir } = await setup(t)
  t.equal((await weir('rollout', 'start', 'app', '--interval', '1h')).code, 0)
  const args = ['--admin', proxy.adminUrl, 'rollout', 'watch', 'app', '--interval-ms', '200', '--timeout', '1s']
  const plain = await cli(t, args)
  t.equal(plain.code, 6, 'the timeout passed first: exit 6')
  t.match(plain.stderr, /^weir: the rollout of app had not ended after --timeout 1s; it is progressing/)
  if (SCRIPT === undefined) {
    t.comment('no util-linux script here: the terminal half is not run')
    return
  }
  // script -e: its exit code is the command's; -c: the command line, run by a shell.
  const line = [NODE, WEIR, ...args].map((arg) => `'${arg}'`).join(' ')
  const onTerminal = (env: NodeJS.ProcessEnv): Promise<{ code: number | null; text: string }> => new Promise((resolve) => {
    const child = spawn(SCRIPT, ['-qec', line, '/dev/null'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (chunk: Buffer) => { text += chunk.toString() })
    t.teardown(() => { if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL') })
    child.once('close', (code) => resolve({ code, text }))
  })
  const tty = await onTerminal(cleanEnv())
  t.equal(tty.code, 6)
  const frames = tty.text.split('\x1b[H\x1b[2J').length - 1
  t.ok(frames >= 3, `the screen was cleared and redrawn (${frames} frames)`)
  t.ok(tty.text.includes('\x1b[36mprogressing\x1b[0m'), 'the phase in colour')
  t.match(tty.text, /step 1\/2 \[#{10}-{10}\] canary 50 %/)
  const plainTty = await onTerminal(cleanEnv({ NO_COLOR: '1' }))
  t.equal(plainTty.code, 6)
  t.ok(plainTty.text.includes('\x1b[H\x1b[2J'), 'NO_COLOR: still redrawn in place')
  t.notOk(plainTty.text.includes('\x1b[36m') || plainTty.text.includes('\x1b[1m'), 'NO_COLOR: no colour')
})

t.test('an admin API that cannot be reached exits 4 and says where it tried', async (t) => {
  const port = await closedPort()
  for (const env of [cleanEnv({ WEIR_ADMIN_URL: `http://127.0.0.1:${port}` }), cleanEnv()]) {
    const args = env.WEIR_ADMIN_URL === undefined ? ['--admin', `http://127.0.0.1:${port}`, 'status'] : ['status']
    const run = await cli(t, args, env)
    t.equal(run.code, 4)
    t.equal(run.stderr, `weir: cannot reach the admin API at http://127.0.0.1:${port}: connect ECONNREFUSED\n`)
    t.equal(run.stdout, '')
  }
})

t.test('a wrong or missing token exits 5 and says how to give one; the right one from WEIR_ADMIN_TOKEN works', async (t) => {
  const { proxy } = await setup(t, { admin: { host: '127.0.0.1', port: 0, token: 'the-right-token' } })
  const wrong = await cli(t, ['--admin', proxy.adminUrl, '--token', 'a-wrong-token', 'status'])
  t.equal(wrong.code, 5)
  t.equal(wrong.stderr, 'weir: the admin API refused the token (401): set WEIR_ADMIN_TOKEN or --token\n')
  const none = await cli(t, ['--admin', proxy.adminUrl, 'get', 'app'])
  t.equal(none.code, 5)
  t.equal(none.stderr, 'weir: the admin API needs a token (401): set WEIR_ADMIN_TOKEN or --token\n')
  const right = await cli(t, ['get', 'app', '-o', 'json'], cleanEnv({ WEIR_ADMIN_URL: proxy.adminUrl, WEIR_ADMIN_TOKEN: 'the-right-token' }))
  t.equal(right.code, 0, right.stderr)
  t.equal(JSON.parse(right.stdout).name, 'app')
  // The token is sent as a bearer: the event log names the actor it stands for.
  const set = await cli(t, ['--admin', proxy.adminUrl, '--token', 'the-right-token', 'set-weights', 'app', 'stable=100'])
  t.equal(set.code, 0, set.stderr)
  const events = (await adminClient(proxy.adminUrl, 'the-right-token').get('/api/v1/events')).json<{ events: { actor: string; action: string }[] }>().events
  t.same(events.filter((e) => e.action === 'weights.set').map((e) => e.actor), ['admin'])
})

t.test('events lists the log, filtered by --since and --route; -o json is the API\'s answer; --follow prints new ones', async (t) => {
  const { proxy, weir } = await setup(t)
  t.equal((await weir('set-weights', 'app', 'stable=90', 'canary=10')).code, 0)
  t.equal((await weir('set-weights', 'app', 'stable=80', 'canary=20')).code, 0)
  const all = await weir('events')
  t.equal(all.code, 0, all.stderr)
  const rows = all.stdout.trim().split('\n')
  t.match(rows[0], /^ID\s+TIME\s+ACTOR\s+ROUTE\s+ACTION\s+DETAIL$/)
  t.match(rows[1], /^1\s+\S+Z\s+local\s+app\s+weights\.set\s+stable 90 {2}canary 10 {2}green 0$/)
  t.match(rows[2], /^2\s.*stable 80 {2}canary 20/)
  const since = JSON.parse((await weir('events', '--since', '1', '-o', 'json')).stdout) as { events: { id: number }[]; lastId: number }
  t.same(since.events.map((e) => e.id), [2])
  t.equal(since.lastId, 2)
  const other = JSON.parse((await weir('events', '--route', 'shop', '-o', 'json')).stdout) as { events: unknown[] }
  t.same(other.events, [], 'no event of another route')

  const follow = start(t, ['--admin', proxy.adminUrl, 'events', '--follow', '--since', '2', '--interval-ms', '100', '-o', 'json'])
  await sleep(500)
  t.equal(follow.stdout(), '', 'nothing new yet')
  t.equal((await weir('rollback', 'app')).code, 0)
  await printed(t, follow, /"action":"rollback"/, 5000)
  const line = JSON.parse(follow.stdout().trim()) as { id: number; action: string; route: string }
  t.match(line, { id: 3, action: 'rollback', route: 'app' }, 'one event a line')
  follow.stop()
  t.equal((await follow.done).code, null, 'it ran until stopped')
})

t.test('usage errors exit 2; the config commands keep their behaviour', async (t) => {
  const unknown = await cli(t, ['frobnicate'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /^weir: unknown command "frobnicate"/)
  const none = await cli(t, [])
  t.equal(none.code, 2)
  t.match(none.stdout, /^Usage: weir <command> \[options\]/)
  const help = await cli(t, ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /rollout/)
  const output = await cli(t, ['-o', 'yaml', 'status'])
  t.equal(output.code, 2)
  const noRoute = await cli(t, ['rollout', 'watch'])
  t.equal(noRoute.code, 2)
  t.match(noRoute.stderr, /missing required argument 'route'/)
  const noConfig = await cli(t, ['validate'])
  t.equal(noConfig.code, 2)
  t.equal(noConfig.stderr, 'weir: no config file: pass --config FILE or set WEIR_CONFIG\n')
  const dir = mkdtempSync(join(tmpdir(), 'weir-cli-'))
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, 'routes:\n  - name: app\n    upstreams: { stable: "http://127.0.0.1:3001" }\n')
  const valid = await cli(t, ['validate'], cleanEnv({ WEIR_CONFIG: file }))
  t.equal(valid.code, 0, valid.stderr)
  t.equal(valid.stdout, `${file}: valid (1 route)\n`)
})

t.test('weir validate prints every problem of a file in one run, each once with its file and line, and exits 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-cli-'))
  const file = join(dir, 'weir.yaml')
  writeFileSync(file, `admin: { host: 127.0.0.1, token: \${WEIR_TEST_UNSET_TOKEN} }
routes:
  - name: shop
    upstreams: { stable: "http://127.0.0.1:3001", canary: "http://127.0.0.1:3002" }
    weights: { stable: 100, canary: 10 }
    timeoutz: { connect: 2s }
    rollout: { steps: [10, 50, 25] }
  - name: shop
    upstreams: { stable: "http://127.0.0.1:3003" }
`)
  const run = await cli(t, ['validate', '--config', file])
  t.equal(run.code, 1, run.stderr)
  const at = (line: number): string => ` \\(${file.replaceAll('.', '\\.')}:${line}\\)$`
  const expected = [
    new RegExp(`^admin\\.token: environment variable WEIR_TEST_UNSET_TOKEN is not set .*${at(1)}`),
    new RegExp(`^routes\\[0\\]\\.timeoutz: unexpected property${at(6)}`),
    new RegExp(`^routes\\[0\\]\\.weights: must sum to 100 \\(they sum to 110\\)${at(5)}`),
    new RegExp(`^routes\\[0\\]\\.rollout\\.steps\\[2\\]: must be greater than the step before it \\(50\\)${at(7)}`),
    new RegExp(`^routes\\[1\\]\\.name: duplicates route name "shop"${at(8)}`),
  ]
  const lines = run.stdout.trimEnd().split('\n')
  for (const pattern of expected) t.equal(lines.filter((line) => pattern.test(line)).length, 1, `printed once: ${pattern}`)
  t.equal(lines.length, expected.length, `and nothing else:\n${run.stdout}`)
})

t.test('status shows a running rollout\'s phase and step; rollout watch -o json prints one rollout view a line until the rollout ends', async (t) => {
  const { proxy, weir } = await setup(t)
  const traffic = startTraffic(proxy.url, { rate: 50, maxMs: 20_000 })
  t.teardown(() => traffic.stop())
  const started = await weir('rollout', 'start', 'app', '--steps', '10,50,100', '--interval', '5m')
  t.equal(started.code, 0, started.stderr)
  const table = await weir('status')
  t.equal(table.code, 0, table.stderr)
  const lines = table.stdout.trim().split('\n')
  t.match(lines[1], /^app\s+[0-9]+\s+progressing 1\/3\s+stable\s+90\s/, `the rollout's phase and step, with the weights it set:\n${table.stdout}`)
  t.match(lines[2], /^\s+canary\s+10\s/)
  const json = JSON.parse((await weir('status', '-o', 'json')).stdout) as { rollout: { phase: string; step: number } | null }[]
  t.match(json[0]?.rollout, { phase: 'progressing', step: 0 })

  const watch = start(t, ['--admin', proxy.adminUrl, 'rollout', 'watch', 'app', '-o', 'json', '--interval-ms', '200'])
  await printed(t, watch, /"phase":"progressing"/, 5000)
  const promoted = await weir('rollout', 'promote', 'app')
  t.equal(promoted.code, 0, promoted.stderr)
  await printed(t, watch, /"step":1,"weight":50/, 5000)
  t.equal((await weir('rollout', 'abort', 'app')).code, 0)
  const run = await watch.done
  t.equal(run.code, 1, `an aborted rollout ends the watch with 1: ${run.stderr}`)
  const views = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { route: string; phase: string; weights: Record<string, number>; rollout: { step: number } })
  t.ok(views.length >= 3, `every line is a JSON rollout view (${views.length}), and nothing else`)
  t.match(views[0], { route: 'app', phase: 'progressing', weights: { stable: 90, canary: 10 }, rollout: { step: 0 } })
  t.ok(views.some((v) => v.rollout.step === 1 && v.weights.canary === 50), 'the promotion to 50 % is one of them')
  t.match(views.at(-1), { phase: 'failed', weights: { stable: 100, canary: 0 } }, 'the last is the end')
  t.ok(views.every((v, i) => i === 0 || JSON.stringify(v) !== JSON.stringify(views[i - 1])), 'a line only when the view changed')
  await traffic.stop()
})
