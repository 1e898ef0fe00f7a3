// The closed sets weir's layers share — versions, decision reasons, rollout phases, shadow
// outcomes and mismatch kinds — each declared once as a const array with its type derived from
// it. A leaf: it imports nothing, and every layer may import it.

/** The versions that can serve a client. */
export const VERSIONS = ['stable', 'canary', 'green'] as const
export type Version = typeof VERSIONS[number]

/** Every version that can have an upstream: the serving ones and the shadow, which never serves a client. */
export const UPSTREAM_NAMES = [...VERSIONS, 'shadow'] as const
export type UpstreamName = typeof UPSTREAM_NAMES[number]

/** What decided a request's version (label `reason` of weir_routing_decisions_total). */
export const DECISION_REASONS = ['override', 'rule', 'user', 'cookie', 'random'] as const
export type DecisionReason = typeof DECISION_REASONS[number]

/** The methods the proxy forwards (and a shadow may copy, those its route lists). */
export const PROXIED_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'PATCH', 'POST'] as const

/** Requests are placed in buckets [0, BUCKETS); weights are in hundredths of a percent of them. */
export const BUCKETS = 10_000

/** The phases of a rollout; a route without one is `idle` (not a phase of a rollout). */
export const ROLLOUT_PHASES = ['smoke', 'progressing', 'watching', 'paused', 'promoting', 'succeeded', 'failed'] as const
export type Phase = typeof ROLLOUT_PHASES[number]

/** Phases in which a rollout drives its route: manual writes need ?force=true, the controller acts. */
export const ACTIVE_PHASES: ReadonlySet<Phase> = new Set<Phase>(['smoke', 'progressing', 'watching', 'paused', 'promoting'])

/** Phases only a blue/green rollout passes through. */
export const BLUEGREEN_PHASES: ReadonlySet<Phase> = new Set<Phase>(['smoke', 'watching'])

/** Whether a persisted rollout (any value, as read from a store) is in an active phase. */
export function isActiveRollout (rollout: unknown): boolean {
  if (typeof rollout !== 'object' || rollout === null) return false
  const phase = (rollout as { phase?: unknown }).phase
  return typeof phase === 'string' && (ACTIVE_PHASES as ReadonlySet<string>).has(phase)
}

export const STRATEGIES = ['canary', 'bluegreen'] as const
export type Strategy = typeof STRATEGIES[number]

/** The manual gates of a rollout. */
export const ROLLOUT_COMMANDS = ['pause', 'resume', 'promote', 'promote-full', 'abort'] as const
export type Command = typeof ROLLOUT_COMMANDS[number]

export const WEBHOOK_TYPES = ['pre-rollout', 'rollout', 'confirm-promotion', 'post-rollout', 'rollback', 'event', 'confirm-rollout', 'confirm-traffic-increase'] as const
export type WebhookType = typeof WEBHOOK_TYPES[number]

/** Outcomes of a sampled shadow copy (label `outcome` of weir_shadow_requests_total). */
export const SHADOW_OUTCOMES = ['ok', 'error', 'dropped', 'skipped'] as const
export type ShadowOutcome = typeof SHADOW_OUTCOMES[number]

/** What differed between a shadow's answer and the served one (label `kind` of weir_shadow_mismatches_total). */
export const MISMATCH_KINDS = ['status', 'headers', 'body'] as const
export type MismatchKind = typeof MISMATCH_KINDS[number]

/** Why an upstream attempt failed (label `reason` of weir_upstream_errors_total). */
export const UPSTREAM_FAILURE_REASONS = [
  'refused', 'reset', 'timeout', 'connect_timeout', 'bad_response', 'tls', 'dns', 'unreachable', 'unavailable', 'client_abort', 'other',
] as const
export type UpstreamFailureReason = typeof UPSTREAM_FAILURE_REASONS[number]

/** What became of a failed attempt that could be retried on another host (label `result` of weir_upstream_retries_total). */
export const RETRY_RESULTS = ['retried', 'budget_exhausted'] as const
export type RetryResult = typeof RETRY_RESULTS[number]

/** The longest window of the rolling stats and shadow comparison counts, in seconds. */
export const MAX_WINDOW_SECONDS = 600
