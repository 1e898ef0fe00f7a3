// The dashboard in a real headless Chromium against a real weir (admin token, real upstreams,
// real traffic): sign-in, live weights that follow the API, a rollout aborted from the page with
// its confirm, the API's refusal shown, a refused token sending the page back to sign-in.

import t, { type Test } from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { adminClient } from '../helpers/admin.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { startTraffic, type Traffic } from '../helpers/traffic.ts'

const TOKEN = 'browser-test-token-' + 'y'.repeat(24)
/** How long the page may take to show a change: it polls every second. */
const FOLLOW_MS = 5000

let browser: Browser | undefined
t.before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox'], timeout: 30_000 })
})
t.teardown(() => browser?.close())

async function setup (t: Test, admin: Record<string, unknown>, route: Record<string, unknown> = {}): Promise<{ proxy: TestProxy; page: Page; problems: string[]; traffic: Traffic }> {
  const [stable, canary, shadow] = await startUpstreams(t, 'stable', 'canary', 'shadow')
  const upstreams = { stable: stable!.url, canary: canary!.url, ...(route.shadow === undefined ? {} : { shadow: shadow!.url }) }
  const proxy = await startProxy(configDoc([{ name: 'app', ...route, upstreams }], { admin }))
  t.teardown(() => proxy.close())
  const traffic = startTraffic(proxy.url, { rate: 50, maxMs: 60_000 })
  t.teardown(() => traffic.stop())
  const context = await (browser as Browser).newContext({ viewport: { width: 1280, height: 900 } })
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(FOLLOW_MS)
  // Script errors and CSP refusals; a 401 or 409 the page handles is logged as a failed load, not kept.
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text())
  })
  return { proxy, page, problems, traffic }
}

const weight = (page: Page, version: string) => page.locator(`#route-weights li[data-version="${version}"] b`)
const phase = (page: Page, name: string) => page.locator('#route-phase .phase', { hasText: name })

t.test('sign in with the token, follow weights set through the API, abort a rollout from the page', async (t) => {
  const { proxy, page, problems } = await setup(t, { host: '127.0.0.1', port: 0, token: TOKEN })
  const api = adminClient(proxy.adminUrl, TOKEN)
  await page.goto(proxy.adminUrl + '/ui')

  await page.getByLabel('Admin token').fill('not-the-token')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#sign-in-error', { hasText: 'The token was refused' }).waitFor()
  t.pass('a wrong token is refused and the sign-in stays')

  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  const row = page.locator('#routes-body tr[data-route="app"]')
  await row.waitFor()
  t.match(await row.textContent(), /stable 100 %.*canary 0 %/, 'the routes list shows the live weights')
  t.equal(await page.evaluate(() => sessionStorage.getItem('weir.adminToken')), TOKEN, 'the token is kept in sessionStorage')

  await row.getByRole('link', { name: 'app' }).click()
  await page.waitForURL(/#\/routes\/app$/)
  await weight(page, 'stable').filter({ hasText: '100 %' }).waitFor()
  t.pass('the route page shows stable 100 %')

  const set = await api.call('PUT', '/api/v1/routes/app/weights', { stable: 70, canary: 30 })
  t.equal(set.status, 200, set.status === 200 ? 'weights set through the API' : set.body)
  await weight(page, 'canary').filter({ hasText: '30 %' }).waitFor()
  t.equal(await weight(page, 'stable').textContent(), '70 %', 'the page follows a weight change made through the API')
  t.equal((await api.call('PUT', '/api/v1/routes/app/weights', { stable: 100, canary: 0 })).status, 200)
  await weight(page, 'canary').filter({ hasText: '0 %' }).waitFor()

  const started = await api.call('POST', '/api/v1/routes/app/rollout', { steps: [10, 50, 100], interval: '5m' })
  t.equal(started.status, 201, started.status === 201 ? 'a rollout started through the API' : started.body)
  await phase(page, 'progressing').waitFor()
  await weight(page, 'canary').filter({ hasText: '10 %' }).waitFor()
  await page.locator('#rollout-steps li[aria-current="step"]', { hasText: '10 %' }).waitFor()
  const abort = page.getByRole('button', { name: 'Abort' })
  t.ok(await abort.isEnabled(), 'abort is offered while the rollout progresses')

  page.once('dialog', (dialog) => { void dialog.dismiss() })
  await abort.click()
  await page.waitForTimeout(1500)
  t.equal((await api.get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase, 'progressing', 'a dismissed confirm aborts nothing')

  let asked = ''
  page.once('dialog', (dialog) => { asked = dialog.message(); void dialog.accept() })
  await abort.click()
  await phase(page, 'failed').waitFor()
  await weight(page, 'stable').filter({ hasText: '100 %' }).waitFor()
  t.match(asked, /Abort the rollout of app\?/, 'the page asked before aborting')
  t.equal(await weight(page, 'canary').textContent(), '0 %', 'the page shows the revert')
  const after = (await api.get('/api/v1/routes/app/rollout')).json<{ phase: string; weights: Record<string, number> }>()
  t.equal(after.phase, 'failed', 'the API agrees: the rollout failed')
  t.same(after.weights, { stable: 100, canary: 0, green: 0 }, 'the API agrees: stable 100')
  t.ok(await abort.isDisabled(), 'abort is no longer offered')
  t.match(await page.locator('#route-events-body').textContent(), /rollout\.aborted|rollout\.failed/, 'the abort is in the page\'s events')

  t.same(problems, [], 'no script error or CSP refusal in the page')
})

t.test('the API\'s refusal of a button is shown; a refused token sends the page back to sign-in', async (t) => {
  const { proxy, page, problems } = await setup(t, { host: '127.0.0.1', port: 0, token: TOKEN })
  const api = adminClient(proxy.adminUrl, TOKEN)
  await page.goto(proxy.adminUrl + '/ui#/routes/app')
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  t.equal((await api.call('POST', '/api/v1/routes/app/rollout', { steps: [10, 100], interval: '5m' })).status, 201)
  await phase(page, 'progressing').waitFor()

  // Holds the page's reads, so it still offers abort after the API has aborted the rollout.
  const held: (() => Promise<void>)[] = []
  await page.route('**/api/v1/**', (route) => {
    if (route.request().method() === 'GET') held.push(() => route.continue())
    else void route.continue()
  })
  t.equal((await api.call('POST', '/api/v1/routes/app/rollout/abort')).status, 200)
  page.once('dialog', (dialog) => { void dialog.accept() })
  await page.getByRole('button', { name: 'Abort' }).click()
  const result = page.locator('#action-result')
  await result.filter({ hasText: 'Abort failed:' }).waitFor()
  t.match(await result.textContent(), /Abort failed: .*(rollout|phase)/i, 'the API\'s message is shown')
  t.equal(await result.getAttribute('data-state'), 'error')
  await page.unroute('**/api/v1/**')
  for (const release of held) await release().catch(() => {})
  await phase(page, 'failed').waitFor()

  await page.evaluate(() => sessionStorage.setItem('weir.adminToken', 'revoked'))
  await page.locator('#sign-in-error', { hasText: 'refused' }).waitFor()
  t.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible(), 'a 401 shows the sign-in again, saying why')
  t.equal(await page.evaluate(() => sessionStorage.getItem('weir.adminToken')), null, 'the refused token is forgotten')
  t.same(problems, [], 'no script error or CSP refusal in the page')
})

t.test('without a token configured, on loopback, the page needs no sign-in', async (t) => {
  const { proxy, page, problems } = await setup(t, { host: '127.0.0.1', port: 0 })
  await page.goto(proxy.adminUrl + '/ui')
  await page.locator('#routes-body tr[data-route="app"]').waitFor()
  t.ok(await page.locator('#sign-in').isHidden(), 'no sign-in form')
  t.ok(await page.getByRole('button', { name: 'Sign out' }).isHidden(), 'nothing to sign out of')
  t.same(problems, [])
})

t.test('the charts draw the traffic, a shadow\'s mismatches are listed, and pause, resume and rollback act through the API', async (t) => {
  // The shadow is another upstream: its answer names another version, so every copy mismatches.
  const { proxy, page, problems } = await setup(t, { host: '127.0.0.1', port: 0, token: TOKEN }, { shadow: { percent: 100, compare: true } })
  const api = adminClient(proxy.adminUrl, TOKEN)
  await page.goto(proxy.adminUrl + '/ui#/routes/app')
  await page.getByLabel('Admin token').fill(TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()

  // The page samples the stats every 2 s: after three samples, stable's request rate is drawn.
  const rate = page.locator('figure[data-chart="rate"]')
  const deadline = Date.now() + 15_000
  while (Number(await rate.getAttribute('data-points') ?? 0) < 3 && Date.now() < deadline) await page.waitForTimeout(200)
  t.ok(Number(await rate.getAttribute('data-points')) >= 3, 'three samples within 15 s')
  t.match(await rate.getAttribute('data-drawn'), /\bstable\b/, 'the request-rate chart has points for stable, above 0')
  t.match(await page.locator('figure[data-chart="weights"]').getAttribute('data-drawn'), /\bstable\b/, 'the weights chart too')
  t.equal(await page.locator('figure.chart canvas').count() >= 4, true, 'uPlot drew a canvas for each of the four charts')

  await page.locator('#mismatch-body tr', { hasText: 'GET' }).first().waitFor({ timeout: 10_000 })
  const rows = await page.locator('#mismatch-body tr').count()
  t.ok(rows >= 1, `the shadow's mismatch samples are listed (${rows} rows)`)
  t.match(await page.locator('#mismatch-body').textContent(), /200 \/ 200/, 'with both statuses')
  const recorded = (await api.get('/api/v1/routes/app/shadow/mismatches?limit=1')).json<{ recorded: number }>().recorded
  t.ok(recorded >= rows, `the API recorded them too (${recorded})`)

  t.equal((await api.call('POST', '/api/v1/routes/app/rollout', { steps: [10, 50, 100], interval: '5m' })).status, 201)
  await phase(page, 'progressing').waitFor()
  const rolloutPhase = async (): Promise<string> => (await api.get('/api/v1/routes/app/rollout')).json<{ phase: string }>().phase
  await page.getByRole('button', { name: 'Pause' }).click()
  await phase(page, 'paused').waitFor()
  t.equal(await rolloutPhase(), 'paused', 'Pause paused the rollout (the API says so)')
  t.ok(await page.getByRole('button', { name: 'Pause' }).isDisabled(), 'and is no longer offered')
  await page.getByRole('button', { name: 'Resume' }).click()
  await phase(page, 'progressing').waitFor()
  t.equal(await rolloutPhase(), 'progressing', 'Resume resumed it')

  let asked = ''
  page.once('dialog', (dialog) => { asked = dialog.message(); void dialog.accept() })
  await page.getByRole('button', { name: 'Rollback' }).click()
  await phase(page, 'failed').waitFor()
  t.match(asked, /Roll app back\?/, 'the page asked before rolling back')
  const after = (await api.get('/api/v1/routes/app/rollout')).json<{ phase: string; weights: Record<string, number> }>()
  t.same([after.phase, after.weights], ['failed', { stable: 100, canary: 0, green: 0 }], 'Rollback: the rollout ended failed and stable has 100 % (the API says so)')
  t.same(problems, [], 'no script error or CSP refusal in the page')
})

t.test('a page opened after the traffic stopped draws the last minutes at once, from the stats\' series', async (t) => {
  // Loopback without a token: a fresh page needs no sign-in.
  const { proxy, page, problems, traffic } = await setup(t, { host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const sent = (await traffic.stop()).filter((r) => r.status === 200).length
  t.ok(sent > 50, `traffic for 3 s (${sent} answers)`)
  // Until the interval the traffic ended in has ended too, and the 3-s samples see none of it.
  const stoppedAt = Date.now()
  await new Promise((resolve) => setTimeout(resolve, Math.max(Math.ceil(stoppedAt / 10_000) * 10_000 + 500, stoppedAt + 4000) - Date.now()))

  const openedAt = Date.now() / 1000
  await page.goto(proxy.adminUrl + '/ui#/routes/app')
  const rate = page.locator('figure[data-chart="rate"]')
  await page.locator('figure[data-chart="rate"][data-drawn~="stable"]').waitFor()
  const first = Number(await rate.getAttribute('data-first'))
  t.ok(first > 0 && first < openedAt - 4, `the first point is from before the page opened (${(openedAt - first).toFixed(1)} s before)`)
  t.ok(Number(await rate.getAttribute('data-points')) >= 2, 'the points of the last 10 minutes')
  t.match(await rate.getAttribute('data-drawn'), /\bstable\b/, 'the request-rate chart draws stable\'s traffic, which no sample since saw')
  t.match(await page.locator('figure[data-chart="p99"]').getAttribute('data-drawn'), /\bstable\b/, 'and the p99 chart its latency')
  const sample = (await adminClient(proxy.adminUrl).get('/api/v1/routes/app/stats?window=3')).json<{ versions: Record<string, { requests: number }> }>()
  t.equal(sample.versions.stable?.requests, 0, 'the 3-s window the page samples holds no request now')
  t.same(problems, [], 'no script error or CSP refusal in the page')
})
