// Stats over the whole fleet: every member's per-version latency histograms for a route and a
// window (GET .../stats?histograms=true on its admin API), added to this replica's own. The
// leader's analysis judges canary against stable on these; `GET .../stats?scope=fleet` answers
// with them. A member that does not answer within the timeout is left out and named.

import type { LatencyHistogram, StatsRegistry, WindowStats } from '../metrics/rolling-stats.ts'
import { windowStatsOf } from '../metrics/rolling-stats.ts'
import { UPSTREAM_NAMES, type UpstreamName } from '../vocabulary.ts'
import type { Fleet, Member } from './fleet.ts'

export type VersionHistograms = Partial<Record<UpstreamName, LatencyHistogram>>

/** A histogram as it crosses between replicas: `[bucket, count, ...]` for the buckets in use. */
export interface WireHistogram { requests: number; errors: number; buckets: number[] }

export function toWire (histograms: VersionHistograms): Partial<Record<UpstreamName, WireHistogram>> {
  const out: Partial<Record<UpstreamName, WireHistogram>> = {}
  for (const [version, h] of Object.entries(histograms) as [UpstreamName, LatencyHistogram][]) {
    const buckets: number[] = []
    h.counts.forEach((count, bucket) => { if (count > 0) buckets.push(bucket, count) })
    out[version] = { requests: h.requests, errors: h.errors, buckets }
  }
  return out
}

function fromWire (wire: unknown, length: number): VersionHistograms | null {
  if (typeof wire !== 'object' || wire === null) return null
  const out: VersionHistograms = {}
  for (const version of UPSTREAM_NAMES) {
    const h = (wire as Record<string, WireHistogram | undefined>)[version]
    if (h === undefined) continue
    if (!Number.isFinite(h.requests) || !Number.isFinite(h.errors) || !Array.isArray(h.buckets)) return null
    const counts = new Float64Array(length)
    for (let i = 0; i + 1 < h.buckets.length; i += 2) {
      const bucket = h.buckets[i] as number
      if (Number.isInteger(bucket) && bucket >= 0 && bucket < length) counts[bucket] = (counts[bucket] as number) + Number(h.buckets[i + 1])
    }
    out[version] = { requests: h.requests, errors: h.errors, counts }
  }
  return out
}

export interface FleetStatsOptions {
  fleet: Fleet
  stats: StatsRegistry
  /** Bucket count of a histogram (rolling-stats.ts BUCKET_COUNT). */
  buckets: number
  /** Bearer token for the other members' admin APIs (a fleet shares its admin tokens). */
  token: string | undefined
  timeoutMs: number
}

export interface FleetHistograms {
  histograms: VersionHistograms
  /** Members whose histograms are in. */
  replicas: string[]
  /** Members that did not answer. */
  missing: string[]
}

async function remote (member: Member, route: string, windowSeconds: number, o: FleetStatsOptions): Promise<VersionHistograms | null> {
  try {
    const reply = await fetch(`${member.admin}/api/v1/routes/${encodeURIComponent(route)}/stats?window=${windowSeconds}&histograms=true`, {
      headers: o.token === undefined ? {} : { authorization: `Bearer ${o.token}` },
      signal: AbortSignal.timeout(o.timeoutMs),
    })
    if (!reply.ok) return null
    const body = (await reply.json()) as { replica?: unknown; histograms?: unknown }
    // Another replica answered at that address (a member advertising a loopback URL reaches the
    // asker itself): its counts are not that member's, and adding them would count them twice.
    if (body.replica !== member.id) return null
    return fromWire(body.histograms, o.buckets)
  } catch {
    return null
  }
}

/** This replica's histograms of a route plus every other member's. */
export async function fleetHistograms (o: FleetStatsOptions, route: string, windowSeconds: number): Promise<FleetHistograms> {
  const own = o.stats.histograms(route, windowSeconds)
  const { members } = await o.fleet.view()
  const others = members.filter((m) => m.id !== o.fleet.self.id)
  const answers = await Promise.all(others.map(async (m) => ({ member: m, histograms: await remote(m, route, windowSeconds, o) })))
  const parts: VersionHistograms[] = [own, ...answers.flatMap((a) => (a.histograms === null ? [] : [a.histograms]))]
  const histograms: VersionHistograms = {}
  for (const version of UPSTREAM_NAMES) {
    const of = parts.flatMap((p) => (p[version] === undefined ? [] : [p[version]]))
    if (of.length > 0) histograms[version] = mergeHistograms(of)
  }
  return {
    histograms,
    replicas: [o.fleet.self.id, ...answers.filter((a) => a.histograms !== null).map((a) => a.member.id)],
    missing: answers.filter((a) => a.histograms === null).map((a) => a.member.id),
  }
}

/** `GET .../stats?scope=fleet`: the stats shape, over every member that answered. */
export async function fleetRouteStats (o: FleetStatsOptions, route: string, windowSeconds: number): Promise<{ window: number; scope: 'fleet'; replicas: string[]; missing: string[]; versions: Partial<Record<UpstreamName, WindowStats>> }> {
  const { histograms, replicas, missing } = await fleetHistograms(o, route, windowSeconds)
  const versions: Partial<Record<UpstreamName, WindowStats>> = {}
  for (const [version, h] of Object.entries(histograms) as [UpstreamName, LatencyHistogram][]) versions[version] = windowStatsOf(h)
  return { window: windowSeconds, scope: 'fleet', replicas, missing, versions }
}

/** Histograms of one route × version from several replicas, added bucket by bucket (they share the buckets). */
export function mergeHistograms (parts: readonly LatencyHistogram[]): LatencyHistogram {
  const first = parts[0]
  const counts = new Float64Array(first?.counts.length ?? 0)
  let requests = 0
  let errors = 0
  for (const part of parts) {
    requests += part.requests
    errors += part.errors
    for (let i = 0; i < counts.length && i < part.counts.length; i++) counts[i] = (counts[i] as number) + (part.counts[i] as number)
  }
  return { requests, errors, counts }
}
