// A real single-member etcd (Debian's etcd-server, /usr/bin/etcd) on loopback ports, with its
// data in a temp dir, for the fleet tests: stop() kills it (the outage), start() brings the same
// member back with its data. Teardown kills it by PID.

import type { Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sleep } from './raw-http.ts'
import { closedPort } from './upstream.ts'

export const ETCD = '/usr/bin/etcd'

export interface TestEtcd {
  readonly url: string
  start (): Promise<void>
  stop (): Promise<void>
}

export async function startEtcd (t: Test): Promise<TestEtcd> {
  if (!existsSync(ETCD)) throw new Error(`${ETCD} is missing: install Debian's etcd-server (.ci/run does)`)
  const dir = mkdtempSync(join(tmpdir(), 'weir-etcd-'))
  const clientPort = await closedPort()
  let peerPort = await closedPort()
  while (peerPort === clientPort) peerPort = await closedPort()
  const url = `http://127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  let child: ChildProcess | null = null
  let output = ''
  const start = async (): Promise<void> => {
    child = spawn(ETCD, [
      '--name', 'test', '--data-dir', join(dir, 'data'),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`, '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.on('data', (chunk: Buffer) => { if (output.length < 20_000) output += chunk.toString() })
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      try {
        const reply = await fetch(`${url}/health`)
        if (reply.ok) return
      } catch {}
      if (child.exitCode !== null) break
      await sleep(50)
    }
    throw new Error(`etcd did not become healthy on ${url}:\n${output}`)
  }
  const stop = async (): Promise<void> => {
    const running = child
    if (running === null || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()))
    running.kill('SIGKILL')
    await exited
  }
  t.teardown(stop)
  await start()
  return { url, start, stop }
}
