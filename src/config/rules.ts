// Cross-field rules the schema cannot express. Shared by config load and the admin API, so a
// weight change is judged the same way wherever it comes from.

import { BlockList, isIP } from 'node:net'
import type { Problem } from '../errors.ts'
import { regexProblem } from '../linear-regexp.ts'
import { VERSIONS, type Version } from '../vocabulary.ts'
import type { RuleCondition, WeightsBp } from './model.ts'
import type { RuleInput } from './schema.ts'

/** The reason given for a percent with more than two decimals. */
export const TWO_DECIMALS = 'must have at most two decimals'

/** Weights and shares are kept in hundredths of a percent: a percent may have at most two decimals. */
export function hasAtMostTwoDecimals (percent: number): boolean {
  return Math.abs(percent * 100 - Math.round(percent * 100)) <= 1e-6
}

/** Converts percent weights to basis points, reporting every weight that is not valid. */
export function checkWeights (
  weights: Partial<Record<Version, unknown>>,
  hasUpstream: (version: Version) => boolean,
  path: string
): { bp: WeightsBp; problems: Problem[] } {
  const problems: Problem[] = []
  const bp: WeightsBp = { stable: 0, canary: 0, green: 0 }
  for (const version of VERSIONS) {
    const w = weights[version]
    if (w === undefined) continue
    if (typeof w !== 'number' || !Number.isFinite(w)) {
      problems.push({ path: `${path}.${version}`, reason: 'must be a number' })
      continue
    }
    const hundredths = Math.round(w * 100)
    if (w < 0 || w > 100) problems.push({ path: `${path}.${version}`, reason: 'must be between 0 and 100' })
    else if (!hasAtMostTwoDecimals(w)) problems.push({ path: `${path}.${version}`, reason: TWO_DECIMALS })
    else if (hundredths > 0 && !hasUpstream(version)) problems.push({ path: `${path}.${version}`, reason: `must be 0: version ${version} has no upstream` })
    bp[version] = hundredths
  }
  if (problems.length === 0) {
    const sum = bp.stable + bp.canary + bp.green
    if (sum !== 10_000) problems.push({ path, reason: `must sum to 100 (they sum to ${sum / 100})` })
  }
  return { bp, problems }
}

/** Checks one upstream URL: http(s), a host, no path, query, fragment or credentials. */
export function checkUpstreamUrl (raw: string, path: string): { origin?: string; problem?: Problem } {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { problem: { path, reason: 'is not a valid URL' } }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { problem: { path, reason: 'must use http:// or https://' } }
  if (url.username !== '' || url.password !== '') return { problem: { path, reason: 'must not carry credentials' } }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    return { problem: { path, reason: 'must be an origin without path, query or fragment (e.g. http://10.0.0.5:3001)' } }
  }
  return { origin: url.origin }
}

/** Parses trusted proxy addresses/CIDRs into a BlockList (matching the peer address per request is one call). */
export function buildTrustedProxies (entries: readonly string[], path: string): { list: BlockList; problems: Problem[] } {
  const list = new BlockList()
  const problems: Problem[] = []
  entries.forEach((entry, i) => {
    const [address, prefix, extra] = entry.split('/')
    const family = isIP(address ?? '')
    if (family === 0 || extra !== undefined) {
      problems.push({ path: `${path}[${i}]`, reason: 'must be an IP address or CIDR (e.g. 10.0.0.0/8)' })
      return
    }
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (prefix === undefined) {
      list.addAddress(address as string, type)
      return
    }
    const bits = Number(prefix)
    if (!/^[0-9]+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
      problems.push({ path: `${path}[${i}]`, reason: 'has an invalid prefix length' })
      return
    }
    list.addSubnet(address as string, bits, type)
    // IPv4 peers of a dual-stack socket appear as ::ffff:a.b.c.d
    if (family === 4) list.addSubnet(`::ffff:${address as string}`, 96 + bits, 'ipv6')
  })
  return { list, problems }
}

/** True for addresses only this machine can reach (the admin API may run without a token there). */
export function isLoopbackHost (host: string): boolean {
  // isIP, so that a name like 127.example.com (which DNS may point anywhere) is not taken for one.
  return host === 'localhost' || host === '::1' || host === '::ffff:127.0.0.1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/**
 * The conditions of a match (a route rule's `match`, or a rollout's match-rule step), checked:
 * exactly one test per source, a regular expression that runs in linear time, at least one source.
 */
export function ruleConditions (match: RuleInput['match'], at: string, problems: Problem[]): RuleCondition[] {
  const conditions: RuleCondition[] = []
  for (const source of ['header', 'cookie', 'query'] as const) {
    const given = match[source]
    if (given === undefined) continue
    const tests = (['exact', 'prefix', 'regex', 'present'] as const).filter((op) => given[op] !== undefined)
    if (tests.length !== 1) {
      problems.push({ path: `${at}.${source}`, reason: 'must have exactly one of exact, prefix, regex or present' })
      continue
    }
    const op = tests[0] as RuleCondition['op']
    if (op === 'regex') {
      const problem = regexProblem(given.regex as string)
      if (problem !== null) problems.push({ path: `${at}.${source}.regex`, reason: problem })
    }
    const name = source === 'header' ? given.name.toLowerCase() : given.name
    conditions.push(op === 'present' ? { source, name, op } : { source, name, op, value: given[op] as string })
  }
  if (conditions.length === 0 && Object.keys(match).length === 0) problems.push({ path: at, reason: 'must have a header, cookie or query condition' })
  return conditions
}
