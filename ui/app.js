// weir's dashboard (docs/dashboard.md): sign-in, the list of routes, and a route's page with its
// weights, charts, rollout, shadow mismatches, events and the operator's buttons. Everything
// comes from /api/v1 by polling; nothing is kept but the token (sessionStorage) and the charts'
// samples (in memory).

import { ApiError, SignInNeeded, get, post, routePath, setToken, token } from './api.js'
import { RouteSeries, SAMPLE_WINDOW, SEED_QUERY, WEIGHTED, createCharts } from './charts.js'
import { $, clock, fill, h, number, percent } from './dom.js'

const POLL_MS = 1000
const STATS_EVERY_MS = 2000
const EVENTS_KEPT = 200
const EVENTS_SHOWN = 25
const ACTIVE = new Set(['smoke', 'progressing', 'watching', 'paused', 'promoting'])

const series = new Map()
let generation = 0
let timer = null
/** Polls the page shown now at once (after an action). */
let refresh = () => {}
let charts = null
let lastStatsAt = 0
let events = []
let lastEventId = null

// ---- polling -------------------------------------------------------------------------------------

function currentPage () {
  const match = /^#\/routes\/([a-z0-9-]+)$/.exec(location.hash)
  return match === null ? { kind: 'list' } : { kind: 'route', name: match[1] }
}

function stop () {
  generation++
  clearTimeout(timer)
  charts?.destroy()
  charts = null
}

/** Shows the page the URL names and polls it until the page changes or sign-in is needed. */
function start () {
  stop()
  const mine = generation
  const page = currentPage()
  showOnly(page.kind === 'list' ? '#routes-page' : '#route-page')
  if (page.kind === 'route') buildRoutePage(page.name)
  lastStatsAt = 0
  let polling = false
  let again = false
  const tick = async () => {
    // One poll at a time: a refresh asked for meanwhile runs as soon as this one ends.
    if (polling) {
      again = true
      return
    }
    polling = true
    clearTimeout(timer)
    const began = Date.now()
    try {
      if (page.kind === 'list') await refreshList()
      else await refreshRoute(page.name)
      await refreshEvents(page)
      if (mine !== generation) return
      status('live', 'Live', `· updated ${clock(Date.now())}`)
    } catch (err) {
      if (mine !== generation) return
      if (err instanceof SignInNeeded) return signIn(token() === null ? null : 'The token was refused, or is no longer valid.')
      status('error', err instanceof ApiError ? `${err.message} (${err.code ?? err.status})` : `Cannot reach weir: ${err.message}`)
    } finally {
      polling = false
    }
    if (mine === generation) timer = setTimeout(tick, again ? 0 : Math.max(100, POLL_MS - (Date.now() - began)))
    again = false
  }
  refresh = tick
  void tick()
}

function showOnly (selector) {
  for (const id of ['#sign-in', '#routes-page', '#route-page']) $(id).hidden = id !== selector
  $('#sign-out').hidden = selector === '#sign-in' || token() === null
}

/** The connection's state; only a change of it is announced (the update time ticks silently). */
function status (kind, text, updated = '') {
  $('#status').dataset.state = kind
  if ($('#status-text').textContent !== text) $('#status-text').textContent = text
  $('#updated').textContent = updated
}

// ---- sign-in -------------------------------------------------------------------------------------

function signIn (problem) {
  stop()
  setToken(null)
  showOnly('#sign-in')
  status('signed-out', 'Signed out')
  fill($('#sign-in-error'), problem ?? '')
  $('#token').value = ''
  $('#token').focus()
}

$('#sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const value = $('#token').value.trim()
  if (value === '') return fill($('#sign-in-error'), 'Enter the admin token.')
  setToken(value)
  start()
})

$('#sign-out').addEventListener('click', () => signIn(null))
window.addEventListener('hashchange', start)

// ---- weights -------------------------------------------------------------------------------------

/** A bar of the three weighted versions and their numbers, the same colours everywhere. */
function weightsView (weights) {
  const bar = h('div', { class: 'bar', 'aria-hidden': 'true' })
  for (const v of WEIGHTED) {
    const part = h('span', { class: `v-${v}` })
    part.style.width = `${weights[v] ?? 0}%`
    bar.append(part)
  }
  const list = h('ul', { class: 'weights-list' },
    WEIGHTED.map((v) => h('li', { dataset: { version: v } }, h('span', { class: `swatch v-${v}`, 'aria-hidden': 'true' }), `${v} `, h('b', {}, percent(weights[v] ?? 0)))))
  return h('div', { class: 'weights' }, bar, list)
}

function phaseBadge (phase) {
  return h('span', { class: `phase phase-${phase}` }, phase)
}

// ---- the list of routes --------------------------------------------------------------------------

async function refreshList () {
  const routes = await get('routes')
  fill($('#routes-body'), routes.map((r) => h('tr', { dataset: { route: r.name } },
    h('th', { scope: 'row' }, h('a', { href: `#/routes/${r.name}` }, r.name)),
    h('td', {}, weightsView(r.weights)),
    h('td', {}, r.rollout === null ? phaseBadge('idle') : [phaseBadge(r.rollout.phase), ` ${r.rollout.strategy}`, ACTIVE.has(r.rollout.phase) ? ` at ${percent(r.rollout.weight)}` : '']),
    h('td', { class: 'num' }, r.revision),
    h('td', {}, r.updatedAt === null ? 'config' : clock(r.updatedAt)))))
  if (routes.length === 0) fill($('#routes-body'), h('tr', {}, h('td', { colspan: 5 }, 'No routes are configured.')))
}

// ---- one route -----------------------------------------------------------------------------------

function buildRoutePage (name) {
  fill($('#route-name'), name)
  document.title = `${name} · weir`
  fill($('#route-phase'))
  fill($('#route-weights'))
  fill($('#action-result'))
  for (const button of document.querySelectorAll('#actions button')) button.disabled = true
  if (!series.has(name)) series.set(name, new RouteSeries())
  charts = createCharts($('#charts'))
  charts.update(series.get(name))
}

async function refreshRoute (name) {
  const now = Date.now()
  const wantStats = now - lastStatsAt >= STATS_EVERY_MS - 100
  const wantSeed = !series.get(name).seeded
  const [route, rollout, stats, mismatches, seed] = await Promise.all([
    get(routePath(name)),
    get(routePath(name, 'rollout')),
    wantStats ? get(`${routePath(name, 'stats')}?window=${SAMPLE_WINDOW}`) : null,
    wantStats ? get(`${routePath(name, 'shadow', 'mismatches')}?limit=10`) : null,
    wantSeed ? get(`${routePath(name, 'stats')}?${SEED_QUERY}`) : null,
  ])
  if (currentPage().name !== name || charts === null) return
  if (seed !== null) series.get(name).seed(seed)
  fill($('#route-phase'), phaseBadge(rollout.phase), ` revision ${route.revision}`, route.source === 'live' ? ` · changed ${clock(route.updatedAt)}` : ' · as configured')
  fill($('#route-weights'), weightsView(route.weights))
  fill($('#route-upstreams'), Object.entries(route.upstreams).map(([v, urls]) =>
    h('li', { dataset: { version: v } }, h('span', { class: `swatch v-${v}`, 'aria-hidden': 'true' }), `${v}: `, h('code', {}, urls.join(', ')))))
  renderRollout(rollout)
  renderActions(rollout.phase)
  if (stats !== null) {
    lastStatsAt = now
    const s = series.get(name)
    s.add(now, stats, route.weights)
    charts.update(s)
    renderStatsNow(stats)
  }
  if (mismatches !== null) renderMismatches(mismatches, route.shadow)
}

function renderStatsNow (stats) {
  const rows = Object.entries(stats.versions ?? {}).map(([v, s]) => h('tr', { dataset: { version: v } },
    h('th', { scope: 'row' }, h('span', { class: `swatch v-${v}`, 'aria-hidden': 'true' }), v),
    h('td', { class: 'num' }, s.requests), h('td', { class: 'num' }, s.errors),
    h('td', { class: 'num' }, percent(s.errorRate * 100)), h('td', { class: 'num' }, s.p99 === null ? '–' : `${number(s.p99)} ms`)))
  fill($('#stats-body'), rows.length > 0 ? rows : h('tr', {}, h('td', { colspan: 5 }, 'No requests yet.')))
}

function renderRollout (view) {
  const r = view.rollout
  if (r === null) {
    fill($('#rollout-summary'), h('p', {}, 'No rollout has run on this route yet.'))
    fill($('#rollout-steps'))
    fill($('#analysis-body'), h('tr', {}, h('td', { colspan: 4 }, 'No check yet.')))
    fill($('#history-body'), h('tr', {}, h('td', { colspan: 5 }, 'No history yet.')))
    return
  }
  const facts = [
    ['Strategy', r.strategy], ['Phase', phaseBadge(r.phase)],
    ['Step', r.step < 0 ? 'not started' : `${Math.min(r.step + 1, r.steps.length)} of ${r.steps.length}`], ['Weight now', percent(r.weight)],
    ['Failed checks', `${r.failures} of ${r.failureThreshold} allowed`],
    ['Started', `${clock(r.startedAt)} by ${r.startedBy}`],
  ]
  if (r.nextCheckAt !== null) facts.push(['Next check', clock(r.nextCheckAt)])
  if (r.watchUntil !== null) facts.push(['Watching until', clock(r.watchUntil)])
  if (r.waitingFor !== null) facts.push(['Waiting for', r.waitingFor])
  if (r.finishedAt !== null) facts.push(['Finished', clock(r.finishedAt)])
  if (r.reason !== null) facts.push(['Reason', r.reason])
  fill($('#rollout-summary'), h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])))
  fill($('#rollout-steps'), r.steps.map((weight, i) => h('li', {
    class: i < r.step ? 'done' : i === r.step ? 'current' : 'todo',
    'aria-current': i === r.step ? 'step' : null,
  }, percent(weight))))
  const check = r.lastCheck
  fill($('#analysis-caption'), check === null ? 'Last analysis' : ['Last analysis at ', clock(check.at), ': ', h('span', { class: `verdict verdict-${check.verdict}` }, check.verdict)])
  fill($('#analysis-body'), check === null || check.checks.length === 0
    ? h('tr', {}, h('td', { colspan: 4 }, check === null ? 'No check yet.' : 'The check ran no analysis.'))
    : check.checks.map((c) => h('tr', {},
      h('th', { scope: 'row', title: c.detail ?? '' }, c.name),
      h('td', { class: 'num' }, number(c.value)), h('td', { class: 'num' }, number(c.threshold)),
      h('td', {}, h('span', { class: `verdict verdict-${c.verdict}` }, c.verdict)))))
  fill($('#history-body'), r.history.slice(-20).reverse().map((e) => h('tr', {},
    h('td', {}, clock(e.at)), h('td', {}, phaseBadge(e.phase)), h('td', { class: 'num' }, e.step + 1), h('td', { class: 'num' }, percent(e.weight)), h('td', {}, e.note))))
}

function renderActions (phase) {
  const active = ACTIVE.has(phase)
  const enabled = { promote: active, pause: active && phase !== 'paused', resume: phase === 'paused', abort: active, rollback: true }
  for (const button of document.querySelectorAll('#actions button')) button.disabled = !enabled[button.dataset.action]
}

function renderMismatches (answer, shadow) {
  fill($('#mismatch-summary'), shadow.compare
    ? `${answer.recorded} mismatch${answer.recorded === 1 ? '' : 'es'} recorded since start; the latest ${answer.samples.length} below.`
    : `Comparison is off for this route (shadow ${percent(shadow.percent)}, compare off).`)
  fill($('#mismatch-body'), answer.samples.length === 0
    ? h('tr', {}, h('td', { colspan: 5 }, 'No mismatches.'))
    : answer.samples.map((m) => h('tr', {},
      h('td', {}, clock(m.at)), h('td', {}, h('code', {}, `${m.method} ${m.url}`)),
      h('td', {}, `${m.primary?.status ?? '–'} / ${m.shadow?.status ?? '–'}`),
      h('td', {}, (m.kinds ?? []).join(', ')),
      h('td', {}, h('code', {}, (m.diff ?? []).map((d) => d.path).join(', '))))))
}

// ---- the operator's buttons ----------------------------------------------------------------------

const CONFIRM = {
  abort: (route) => `Abort the rollout of ${route}? Its version's weight goes back to stable at once.`,
  rollback: (route) => `Roll ${route} back? Stable takes 100 % at once and any rollout is aborted.`,
}

$('#actions').addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action]')
  const page = currentPage()
  if (button === null || page.kind !== 'route') return
  const action = button.dataset.action
  const ask = CONFIRM[action]
  if (ask !== undefined && !window.confirm(ask(page.name))) return
  const result = $('#action-result')
  result.dataset.state = 'busy'
  fill(result, `${button.textContent}…`)
  try {
    await post(action === 'rollback' ? routePath(page.name, 'rollback') : routePath(page.name, 'rollout', action))
    result.dataset.state = 'ok'
    fill(result, `${button.textContent}: done at ${clock(Date.now())}.`)
    void refresh()
  } catch (err) {
    if (err instanceof SignInNeeded) return signIn('The token was refused, or is no longer valid.')
    result.dataset.state = 'error'
    fill(result, `${button.textContent} failed: ${err.message}`)
  }
})

// ---- events --------------------------------------------------------------------------------------

async function refreshEvents (page) {
  const answer = await get(lastEventId === null ? `events?limit=${EVENTS_KEPT}` : `events?since=${lastEventId}`)
  events = events.concat(answer.events).slice(-EVENTS_KEPT)
  lastEventId = answer.lastId
  const shown = (page.kind === 'route' ? events.filter((e) => e.route === page.name) : events).slice(-EVENTS_SHOWN).reverse()
  const body = page.kind === 'route' ? $('#route-events-body') : $('#events-body')
  fill(body, shown.length === 0
    ? h('tr', {}, h('td', { colspan: 5 }, 'No events yet.'))
    : shown.map((e) => h('tr', {},
      h('td', {}, clock(e.time)), h('td', {}, e.route ?? '–'), h('td', {}, e.action), h('td', {}, e.actor), h('td', {}, describe(e)))))
}

/** One line on what an event changed or why. */
function describe (event) {
  const reason = event.reason
  if (reason !== null && typeof reason === 'object') {
    for (const key of ['detail', 'message', 'note']) if (typeof reason[key] === 'string') return reason[key]
  }
  const before = event.old?.weights
  const after = event.new?.weights
  if (after !== null && typeof after === 'object') {
    const changed = WEIGHTED.filter((v) => before?.[v] !== after[v])
    return (changed.length > 0 ? changed : WEIGHTED).map((v) => `${v} ${before?.[v] === undefined || before[v] === after[v] ? '' : `${percent(before[v])} → `}${percent(after[v] ?? 0)}`).join(', ')
  }
  return ''
}

start()
