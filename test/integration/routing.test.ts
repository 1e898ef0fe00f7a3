// Routing through real sockets: weight shares, user-id stickiness, bucket cookie, override.

import t, { type Test } from 'tap'
import { Agent } from 'node:http'
import { startUpstream, type Upstream } from '../helpers/upstream.ts'
import { configDoc, mustBuild, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'

const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 })
t.teardown(() => keepAlive.destroy())

async function threeVersions (t: Test, weights: Record<string, number>, extra: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; ups: Record<string, Upstream> }> {
  const ups = { stable: await startUpstream('stable'), canary: await startUpstream('canary'), green: await startUpstream('green') }
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: ups.stable.url, canary: ups.canary.url, green: ups.green.url },
    weights,
    stickiness: { userId: { header: 'x-user-id' } },
    ...extra,
  }]))
  t.teardown(async () => {
    await proxy.close()
    for (const u of Object.values(ups)) await u.close()
  })
  return { proxy, ups }
}

/** Sends `count` requests with distinct random user ids, `parallel` at a time; returns the version of each. */
async function versionsFor (url: string, userIds: string[], parallel = 32): Promise<Map<string, string>> {
  const result = new Map<string, string>()
  let next = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < userIds.length) {
      const id = userIds[next++] as string
      const reply = await send(url, { headers: { 'x-user-id': id }, agent: keepAlive })
      result.set(id, String(reply.headers['x-weir-version']))
    }
  }))
  return result
}

const randomIds = (n: number, salt: string): string[] => Array.from({ length: n }, (_, i) => `${salt}-${i}-${Math.random().toString(36).slice(2)}`)

function shares (versions: Map<string, string>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const v of versions.values()) counts[v] = (counts[v] ?? 0) + 1
  const out: Record<string, number> = {}
  for (const [k, n] of Object.entries(counts)) out[k] = (100 * n) / versions.size
  return out
}

t.test('20 000 requests at 90/10 with random user ids put 10 % (±1.5) on canary', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 90, canary: 10 })
  const versions = await versionsFor(proxy.url + '/', randomIds(20_000, 'a'))
  const s = shares(versions)
  t.ok(Math.abs((s.canary ?? 0) - 10) <= 1.5, `canary share ${s.canary}`)
  t.ok(Math.abs((s.stable ?? 0) - 90) <= 1.5, `stable share ${s.stable}`)
  t.equal(s.green, undefined, 'green at weight 0 gets nothing')
})

t.test('33.33/33.33/33.34 spreads 20 000 users evenly (±1.5) across three versions', async (t) => {
  const { proxy } = await threeVersions(t, { stable: 33.34, canary: 33.33, green: 33.33 })
  const s = shares(await versionsFor(proxy.url + '/', randomIds(20_000, 'b')))
  for (const [v, expected] of [['stable', 33.34], ['canary', 33.33], ['green', 33.33]] as const) {
    t.ok(Math.abs((s[v] ?? 0) - expected) <= 1.5, `${v} share ${s[v]}`)
  }
})
