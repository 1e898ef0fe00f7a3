// `npm run demo`: starts four tiny upstreams (stable, canary, green, shadow, on the ports of
// config/weir.yaml) and weir itself in this one process, then prints curl lines to try. Each
// upstream can be broken on request (`POST /__demo/break`: it answers 500 to everything until
// `POST /__demo/heal`), so a newcomer can watch the controller revert a failing canary.
// Ctrl-C drains weir and exits 0 (serve() handles SIGINT); the upstreams never keep the
// process alive on their own.

import { createServer, type Server } from 'node:http'
import { fileURLToPath } from 'node:url'
import { formatProblems } from '../src/config/problems.ts'
import { loadConfigFile } from '../src/config/load.ts'
import type { RouteConfig } from '../src/config/model.ts'
import { liveRoute } from '../src/state/live-routes.ts'
import { VERSIONS, type UpstreamName } from '../src/vocabulary.ts'
import { serve } from '../src/server.ts'

const CONFIG_FILE = fileURLToPath(new URL('../config/weir.yaml', import.meta.url))

function fail (message: string): never {
  process.stderr.write(`weir demo: ${message}\n`)
  process.exit(1)
}

function listenError (err: NodeJS.ErrnoException, what: string, host: string, port: number | string): string {
  if (err.code === 'EADDRINUSE') {
    return `${what} cannot listen on ${host}:${port}: the port is already in use ` +
      `(another demo or weir still running? find it with: lsof -i :${port})`
  }
  if (err.code === 'EACCES') return `${what} cannot listen on ${host}:${port}: permission denied`
  if (err.code === 'EADDRNOTAVAIL') return `${what} cannot listen on ${host}:${port}: no such local address`
  return `${what} cannot listen on ${host}:${port}: ${err.message}`
}

/**
 * One demo upstream: answers every request with `{ version, path, userId }`, or 500 while broken
 * (`POST /__demo/break` on its own port; `POST /__demo/heal` mends it).
 */
async function startUpstream (version: UpstreamName, origin: string, userIdHeader: string | undefined): Promise<Server> {
  const { hostname, port } = new URL(origin)
  const host = hostname.replace(/^\[(.*)\]$/, '$1')
  let broken = false
  const server = createServer((req, res) => {
    req.resume() // a body is read and dropped
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      if (req.method === 'POST' && (req.url === '/__demo/break' || req.url === '/__demo/heal')) {
        broken = req.url === '/__demo/break'
        res.end(JSON.stringify({ version, broken }) + '\n')
        return
      }
      if (broken) {
        res.statusCode = 500
        res.end(JSON.stringify({ version, error: 'broken on request (POST /__demo/heal mends it)' }) + '\n')
        return
      }
      const userId = userIdHeader === undefined ? undefined : req.headers[userIdHeader]
      res.end(JSON.stringify({ version, path: req.url, userId: typeof userId === 'string' ? userId : null }) + '\n')
    })
  })
  // Short keep-alive, and no hold on the event loop: weir's own server and its signal handlers
  // decide when the process ends.
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(Number(port === '' ? 80 : port), host, () => {
      server.off('error', reject)
      resolve()
    })
  }).catch((err: NodeJS.ErrnoException) => fail(listenError(err, `the ${version} upstream`, hostname, port)))
  server.unref()
  return server
}

function banner (url: string, adminUrl: string, route: RouteConfig, live: RouteConfig, token: boolean): string {
  // What it serves now: the saved live state wins over the file (said, with the way back).
  const weights = VERSIONS.map((v) => `${v} ${live.weights[v] / 100}%`).join(', ')
  const overridden = VERSIONS.some((v) => live.weights[v] !== route.weights[v])
  const lines = [
    '',
    `weir demo: proxy on ${url}  (route "${route.name}": ${weights}${overridden ? ', from the saved live state' : ''})`,
    ...(overridden ? [`  (the config file says ${VERSIONS.map((v) => `${v} ${route.weights[v] / 100}%`).join(', ')}; back to it: curl -s -X POST ${adminUrl}/api/v1/routes/${route.name}/reset${token ? ' -H "authorization: Bearer $WEIR_ADMIN_TOKEN"' : ''} -H 'content-type: application/json')`] : []),
    '',
    '  # a plain request: see the x-weir-version response header and the set-cookie bucket',
    `  curl -i ${url}/`,
    '  # with a cookie jar: run it a few times, it stays on the same version',
    `  curl -c /tmp/weir.jar -b /tmp/weir.jar -i ${url}/`,
  ]
  if (route.userIdHeader !== undefined) {
    lines.push('  # a user id always lands on the same version',
      `  curl -s -H '${route.userIdHeader}: alice' ${url}/`)
  }
  if (route.override !== false && route.override.header !== undefined) {
    const secret = route.override.secret === undefined ? '' : ' -H "x-weir-override-secret: $OVERRIDE_SECRET"'
    const from = route.override.from === undefined ? '' : ` (only from ${route.override.from.join(', ')})`
    lines.push(`  # the override header reaches green even at weight 0${from}`,
      `  curl -s -H '${route.override.header}: green'${secret} ${url}/`)
  } else {
    lines.push('  # no override on this route: x-weir-version is ignored (add override: { header: x-weir-version } to opt in)')
  }
  const user = route.userIdHeader ?? 'x-user-id'
  const auth = token ? ' -H "authorization: Bearer $WEIR_ADMIN_TOKEN"' : ''
  lines.push('  # 100 users: count who got which version',
    `  for i in $(seq 100); do curl -s -H "${user}: u$i" ${url}/ | grep -o '"version":"[a-z]*"'; done | sort | uniq -c`,
    '  # the admin API: move 30 % to canary (in force at once, kept across restarts), see it, roll back',
    `  curl -s${auth} -H 'content-type: application/json' -X PUT ${adminUrl}/api/v1/routes/${route.name}/weights -d '{"stable":70,"canary":30}'`,
    `  curl -s${auth} ${adminUrl}/api/v1/routes/${route.name}/stats?window=60`,
    `  curl -s${auth} -H 'content-type: application/json' -X POST ${adminUrl}/api/v1/routes/${route.name}/rollback`,
    `  curl -s${auth} ${adminUrl}/api/v1/events`)
  if (route.upstreams.shadow !== undefined) {
    lines.push('  # copy half the requests to the shadow and compare its answers (it names another version: a mismatch)',
      `  curl -s${auth} -H 'content-type: application/json' -X PUT ${adminUrl}/api/v1/routes/${route.name}/shadow -d '{"percent":50,"compare":true}'`,
      `  for i in $(seq 20); do curl -s -o /dev/null ${url}/items/$i; done`,
      `  curl -s${auth} ${adminUrl}/api/v1/routes/${route.name}/shadow/mismatches?limit=2`)
  }
  if (route.upstreams.canary !== undefined) {
    const traffic = (users: number): string => `  for i in $(seq ${users}); do curl -s -o /dev/null -H "${user}: u$i" ${url}/ & sleep 0.03; done &`
    const rollout = (extra: string): string => `  curl -s${auth} -H 'content-type: application/json' -X POST ${adminUrl}/api/v1/routes/${route.name}/rollout -d '{"steps":[10,50],"interval":"5s","analysis":{"minRequests":10}${extra}}'`
    lines.push('  # a rollout: canary 10 % → 50 % → promoted, 5 s per step, while traffic flows (about 30 req/s; the controller needs data)',
      traffic(1200),
      rollout(''),
      `  curl -s${auth} ${adminUrl}/api/v1/routes/${route.name}/rollout   # phase "succeeded" some 10-15 s later`)
    const canary = route.upstreams.canary[0] as string
    lines.push('  # then a failing canary: the file\'s values again (a promotion points stable at the canary\'s upstream), traffic,',
      '  # a rollout whose fast guard reverts after 5 failures in a row, then break the canary (500 to everything):',
      '  # within a few seconds the rollout fails',
      `  curl -s${auth} -X POST ${adminUrl}/api/v1/routes/${route.name}/reset`,
      traffic(600),
      rollout(',"guard":{"minRequests":5}'),
      `  curl -s -X POST ${canary}/__demo/break`,
      `  curl -s${auth} ${adminUrl}/api/v1/routes/${route.name}/rollout   # phase "failed", reason "fast guard: …"; weir's log says it too`,
      `  curl -s -X POST ${canary}/__demo/heal`)
  }
  lines.push(
    '',
    'Ctrl-C stops everything.',
    '')
  return lines.join('\n') + '\n'
}

async function main (): Promise<void> {
  const loaded = loadConfigFile(CONFIG_FILE)
  if (!loaded.ok) fail(`${CONFIG_FILE} is not valid:\n${formatProblems(loaded.problems)}`)
  const route = loaded.config.routes[0] as RouteConfig

  for (const version of [...VERSIONS, 'shadow'] as const) {
    for (const origin of route.upstreams[version] ?? []) await startUpstream(version, origin, route.userIdHeader)
  }

  let running
  try {
    running = await serve(CONFIG_FILE)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const { host, port } = loaded.config.listen
    fail(e.code !== undefined && e.syscall === 'listen' ? listenError(e, 'weir', host, port) : `weir failed to start: ${e.message}`)
  }
  // pino writes asynchronously (and its flush() does not wait without a minLength): give its
  // "listening" lines a moment so the banner comes after them.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const live = liveRoute(route, running.apps.store.get(route.name))
  process.stdout.write(banner(running.url, running.adminUrl, route, live, running.config.admin.tokens.length > 0))
}

main().catch((err: unknown) => fail((err as Error).message))
