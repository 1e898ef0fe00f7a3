// `node scripts/dashboard-screenshot.ts [out.png]`: writes docs/dashboard.png, the dashboard
// during a canary rollout with traffic flowing. Starts real upstreams, weir (with an admin token)
// and headless Chromium (/usr/bin/chromium, or $CHROMIUM) in this one process, and closes them all.

import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { configDoc, startProxy } from '../test/helpers/proxy.ts'
import { startUpstream } from '../test/helpers/upstream.ts'
import { startTraffic } from '../test/helpers/traffic.ts'

const OUT = process.argv[2] ?? fileURLToPath(new URL('../docs/dashboard.png', import.meta.url))
const TOKEN = 'dashboard-screenshot-token-0123456789'
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const upstreams = [await startUpstream('stable'), await startUpstream('canary'), await startUpstream('shadow')]
const [stable, canary, shadow] = upstreams as [typeof upstreams[0], typeof upstreams[0], typeof upstreams[0]]
// A canary a little slower than stable, and a shadow that now and then answers differently.
canary.handle((_req, res) => setTimeout(() => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ ok: true }))
}, 4 + Math.random() * 6))
stable.handle((_req, res) => setTimeout(() => {
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ ok: true }))
}, 2 + Math.random() * 4))
let n = 0
shadow.handle((_req, res) => {
  n++
  res.statusCode = n % 17 === 0 ? 500 : 200
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ ok: n % 5 !== 0 }))
})
const proxy = await startProxy(configDoc([{
  name: 'shop',
  upstreams: { stable: stable.url, canary: canary.url, shadow: shadow.url },
  shadow: { percent: 20, compare: true },
  rollout: { steps: [5, 10, 25, 50, 100], interval: '8s', analysis: { minRequests: 20, maxP99Ms: 500, maxP99Ratio: 5 } },
}, {
  name: 'checkout',
  upstreams: { stable: stable.url, green: canary.url },
}], { admin: { host: '127.0.0.1', port: 0, token: TOKEN } }))
const traffic = startTraffic(proxy.url, { rate: 150, maxMs: 120_000 })
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'] })
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error('page:', m.text()) })
  page.on('pageerror', (err) => console.error('page error:', err.message))
  await page.goto(`${proxy.adminUrl}/ui#/routes/shop`)
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#route-weights').getByText('stable').waitFor({ timeout: 10_000 })
  await sleep(16_000)
  const started = await fetch(`${proxy.adminUrl}/api/v1/routes/shop/rollout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: '{}',
  })
  if (started.status !== 201) throw new Error(`the rollout did not start: ${started.status} ${await started.text()}`)
  await sleep(30_000)
  await page.screenshot({ path: OUT, fullPage: true })
  process.stderr.write(`wrote ${OUT}\n`)
} finally {
  await browser.close()
  await traffic.stop()
  await proxy.close()
  for (const u of upstreams) await u.close()
}
