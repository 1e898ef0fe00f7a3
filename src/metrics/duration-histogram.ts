// weir_request_duration_seconds: a metric registered in the prom-client registry that reads the
// hot path's per route × version bucket counts (cells.ts) at scrape time, so a request pays
// two typed-array increments instead of prom-client's label hashing in Histogram#observe.

import type { Metric, Registry } from 'prom-client'
import { VERSIONS } from '../vocabulary.ts'
import { DURATION_BUCKETS_MS, type RouteMetrics, type VersionMetrics } from './cells.ts'

interface Sample {
  metricName: string
  labels: Record<string, string | number>
  value: number
}

// The `le` label of each bucket, in seconds, made once ("0.0005", ..., "10").
const LE = DURATION_BUCKETS_MS.map((ms) => String(ms / 1000))

/**
 * Implements what prom-client's Registry calls on a metric: `get()` for /metrics and
 * getMetricsAsJSON, `reset()` for resetMetrics, `name`, `help`, `type` and `aggregator`.
 * Its series are the same as a prom-client Histogram's: cumulative `_bucket{le}` ending with
 * `+Inf`, `_sum` (seconds) and `_count`, for every route × version, from 0.
 */
export class DurationHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly routes: ReadonlyMap<string, RouteMetrics>

  constructor (options: { name: string; help: string; routes: ReadonlyMap<string, RouteMetrics>; registers: Registry[] }) {
    this.name = options.name
    this.help = options.help
    this.routes = options.routes
    // The registry only calls the members above; its types name prom-client's own classes.
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric)
  }

  async get (): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = []
    for (const [route, cells] of this.routes) {
      for (const version of VERSIONS) pushSeries(values, this.name, route, version, cells.versions[version])
      pushSeries(values, this.name, route, 'shadow', cells.shadowVersion)
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const cells of this.routes.values()) {
      for (const version of VERSIONS) resetCells(cells.versions[version])
      resetCells(cells.shadowVersion)
    }
  }
}

/** The cumulative `_bucket{le}` series, `_sum` and `_count` of one route × version. */
function pushSeries (values: Sample[], name: string, route: string, version: string, cells: VersionMetrics): void {
  const bucketName = name + '_bucket'
  const counts = cells.durationCounts
  let cumulative = 0
  for (let i = 0; i < LE.length; i++) {
    cumulative += counts[i] as number
    values.push({ metricName: bucketName, labels: { route, version, le: LE[i] as string }, value: cumulative })
  }
  cumulative += counts[LE.length] as number
  values.push({ metricName: bucketName, labels: { route, version, le: '+Inf' }, value: cumulative })
  values.push({ metricName: name + '_sum', labels: { route, version }, value: cells.durationSumMs / 1000 })
  values.push({ metricName: name + '_count', labels: { route, version }, value: cumulative })
}

function resetCells (cells: VersionMetrics): void {
  cells.durationCounts.fill(0)
  cells.durationSumMs = 0
}
