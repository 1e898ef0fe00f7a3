// The route page's charts: per-version weights, request rate, error rate and p99 over the last
// 10 minutes, drawn with uPlot. A page starts from the server's 10-s series of the last 10
// minutes (`stats?window=600&series=10`), then samples `stats?window=3` every 2 s and keeps the
// points here (docs/dashboard.md).

import uPlot from './vendor/uPlot.esm.js'

export const VERSIONS = ['stable', 'canary', 'green', 'shadow']
export const WEIGHTED = ['stable', 'canary', 'green']
/** The stats window each sample asks for, in seconds. */
export const SAMPLE_WINDOW = 3
/** What a page starts from: the last 10 minutes in 10-s intervals. */
export const SEED_QUERY = 'window=600&series=10'
const KEEP_SECONDS = 600

/**
 * The window of `stats?window=N` is the server's current, partial second and the N − 1 seconds
 * before it. With the browser's clock standing in for the server's, the part of the current
 * second already gone is `now % 1000`; a skewed clock errs by less than a second of N − 1 or more.
 */
function coveredSeconds (now) {
  return SAMPLE_WINDOW - 1 + Math.max(0.05, (now % 1000) / 1000)
}

/** One route's samples, kept in the tab while it is open. */
export class RouteSeries {
  constructor () {
    this.t = []
    this.weights = Object.fromEntries(WEIGHTED.map((v) => [v, []]))
    this.rate = Object.fromEntries(VERSIONS.map((v) => [v, []]))
    this.errorRate = Object.fromEntries(VERSIONS.map((v) => [v, []]))
    this.p99 = Object.fromEntries(VERSIONS.map((v) => [v, []]))
    /** Whether the server's series has been put in (once per route and tab). */
    this.seeded = false
  }

  /**
   * The server's series (a `stats?series=` reply), put before the samples: a new tab shows the
   * last 10 minutes at once. Its last interval is still counting, so it is left to the samples.
   * The API keeps no history of weights: theirs start with the first sample.
   */
  seed (reply) {
    this.seeded = true
    const byVersion = reply?.series?.versions ?? {}
    const ends = Object.values(byVersion)[0]?.map((p) => p.t) ?? []
    const before = this.t[0] ?? Infinity
    const kept = ends.map((_t, i) => i).filter((i) => i < ends.length - 1 && ends[i] < before)
    const point = (v, i) => byVersion[v]?.[i] ?? null
    this.t.unshift(...kept.map((i) => ends[i]))
    for (const v of WEIGHTED) this.weights[v].unshift(...kept.map(() => null))
    for (const v of VERSIONS) {
      this.rate[v].unshift(...kept.map((i) => point(v, i)?.rps ?? null))
      this.errorRate[v].unshift(...kept.map((i) => (point(v, i) === null || point(v, i).requests === 0 ? null : point(v, i).errorRate * 100)))
      this.p99[v].unshift(...kept.map((i) => point(v, i)?.p99 ?? null))
    }
  }

  /** A sample taken at `now` (epoch ms): the stats answer and the route's weights then. */
  add (now, stats, weights) {
    const covered = coveredSeconds(now)
    this.t.push(now / 1000)
    for (const v of WEIGHTED) this.weights[v].push(weights?.[v] ?? null)
    for (const v of VERSIONS) {
      const s = stats?.versions?.[v]
      const requests = s?.requests ?? null
      this.rate[v].push(requests === null ? null : requests / covered)
      this.errorRate[v].push(requests === null || requests === 0 ? null : (s.errors / requests) * 100)
      this.p99[v].push(s?.p99 ?? null)
    }
    const oldest = now / 1000 - KEEP_SECONDS
    let drop = 0
    while (drop < this.t.length && this.t[drop] < oldest) drop++
    if (drop > 0) {
      this.t.splice(0, drop)
      for (const group of [this.weights, this.rate, this.errorRate, this.p99]) {
        for (const values of Object.values(group)) values.splice(0, drop)
      }
    }
  }
}

function colour (version) {
  return getComputedStyle(document.documentElement).getPropertyValue(`--${version}`).trim() || '#888'
}

const CHARTS = [
  { key: 'weights', title: 'Weights (%)', versions: WEIGHTED, unit: ' %', range: () => [0, 100], stepped: true },
  { key: 'rate', title: 'Requests per second', versions: VERSIONS, unit: '/s', range: (max) => [0, Math.max(1, max)] },
  { key: 'errorRate', title: 'Error rate (%)', versions: VERSIONS, unit: ' %', range: (max) => [0, Math.max(1, max)] },
  { key: 'p99', title: 'p99 latency (ms)', versions: VERSIONS, unit: ' ms', range: (max) => [0, Math.max(1, max)] },
]

function format (value, unit) {
  if (value === null || value === undefined) return '–'
  return `${Number(value.toPrecision(3))}${unit}`
}

/** Draws the four charts into `container` (a `.charts` element); `update(series)` redraws them. */
export function createCharts (container) {
  const plots = []
  for (const chart of CHARTS) {
    const figure = document.createElement('figure')
    figure.className = 'chart'
    figure.dataset.chart = chart.key
    const caption = document.createElement('figcaption')
    caption.textContent = chart.title
    const holder = document.createElement('div')
    figure.append(caption, holder)
    container.append(figure)
    const options = {
      width: Math.max(280, holder.clientWidth || container.clientWidth / 2 - 24),
      height: 180,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => chart.range(max ?? 0) } },
      series: [
        {},
        ...chart.versions.map((v) => ({
          label: v,
          stroke: colour(v),
          width: 2,
          spanGaps: false,
          points: { show: false },
          value: (_u, value) => format(value, chart.unit),
          ...(chart.stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
        })),
      ],
      axes: [{}, { size: 56, values: (_u, splits) => splits.map((s) => format(s, '')) }],
    }
    const data = [[], ...chart.versions.map(() => [])]
    plots.push({ chart, figure, holder, plot: new uPlot(options, data, holder) })
  }
  const resize = () => {
    for (const { holder, plot } of plots) plot.setSize({ width: Math.max(280, holder.clientWidth), height: 180 })
  }
  window.addEventListener('resize', resize)
  return {
    update (series) {
      for (const { chart, figure, plot } of plots) {
        plot.setData([series.t, ...chart.versions.map((v) => series[chart.key][v])])
        // What is drawn, for a test or a curious operator: the points, the first one's time (unix
        // seconds), and the versions with a value above 0.
        figure.dataset.points = String(series.t.length)
        figure.dataset.first = series.t.length === 0 ? '' : String(series.t[0])
        figure.dataset.drawn = chart.versions.filter((v) => series[chart.key][v].some((value) => value !== null && value > 0)).join(' ')
      }
    },
    destroy () {
      window.removeEventListener('resize', resize)
      for (const { plot } of plots) plot.destroy()
      container.replaceChildren()
    },
  }
}
