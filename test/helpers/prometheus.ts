// A real Prometheus (Debian's, /usr/bin/prometheus) on a loopback port with its TSDB in a temp
// dir, scraping the given targets every second and evaluating the given rule files; teardown
// (or a test that needs it gone) kills it by PID. Also runs promtool with text on stdin.

import type { Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { sleep } from './raw-http.ts'
import { closedPort } from './upstream.ts'

export const PROMETHEUS = '/usr/bin/prometheus'
export const PROMTOOL = '/usr/bin/promtool'

/** One sample of an instant query's vector. */
export interface PromSample { metric: Record<string, string>; value: [number, string] }
export interface QueryAnswer { status: string; errorType?: string; error?: string; data?: { resultType: string; result: PromSample[] } }

export interface TestPrometheus {
  readonly url: string
  /** GET /api/v1/query?query=expr, parsed (status "error" answers too). */
  query (expr: string): Promise<QueryAnswer>
  /** GET url + path, JSON. */
  get<T> (path: string): Promise<T>
  /** Kills this Prometheus (SIGKILL, by its PID) and waits until it exited. */
  stop (): Promise<void>
}

export interface PrometheusOptions {
  /** Scraped as job `job` (host:port each). */
  targets: string[]
  job: string
  /** More jobs scraped the same way (at /metrics), such as an upstream's own metrics. */
  moreJobs?: { job: string; targets: string[] }[]
  ruleFiles?: string[]
}

export async function startPrometheus (t: Test, options: PrometheusOptions): Promise<TestPrometheus> {
  if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: install Debian's prometheus (.ci/run does)`)
  const dir = mkdtempSync(join(tmpdir(), 'weir-prometheus-'))
  const config = join(dir, 'prometheus.yaml')
  writeFileSync(config, stringify({
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [{ job: options.job, targets: options.targets }, ...options.moreJobs ?? []]
      .map(({ job, targets }) => ({ job_name: job, static_configs: [{ targets }] })),
  }))
  const port = await closedPort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(PROMETHEUS, [
    `--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => { if (output.length < 20_000) output += chunk.toString() })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    process.kill(child.pid, 'SIGKILL')
    await exited
  }
  t.teardown(stop)
  const get = async <T>(path: string): Promise<T> => await (await fetch(url + path)).json() as T
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break
    } catch {}
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not become ready on ${url}:\n${output}`)
    await sleep(100)
  }
  return {
    url,
    get,
    stop,
    query: (expr) => get<QueryAnswer>(`/api/v1/query?query=${encodeURIComponent(expr)}`),
  }
}

/** Polls `expr` until it has a result, at most `limitMs`; the last answer. */
export async function untilData (prometheus: TestPrometheus, expr: string, limitMs: number): Promise<QueryAnswer> {
  const deadline = Date.now() + limitMs
  for (;;) {
    const answer = await prometheus.query(expr)
    if ((answer.data?.result.length ?? 0) > 0 || Date.now() > deadline) return answer
    await sleep(250)
  }
}

/** Runs promtool with `args`, `stdin` piped in; its exit status and everything it wrote. */
export function promtool (args: string[], stdin = ''): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, args, { input: stdin, encoding: 'utf8', timeout: 30_000 })
  return { status: run.status, output: `${run.stdout}${run.stderr}` }
}
