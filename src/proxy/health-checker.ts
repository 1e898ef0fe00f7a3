// Active health checks of one route × version: every interval, a GET of the check path on each
// host, straight on the host's pool (never through the proxy, so no probe is counted in a
// version's metrics, rolling stats or shadow). unhealthyThreshold failures in a row take a host
// out, healthyThreshold passes in a row bring it back (health on HostHealth). Each data path
// process checks on its own, as each nginx worker does without a shared zone.

import type { HealthCheckConfig } from '../config/model.ts'
import type { UpstreamTarget } from './upstream-pools.ts'

const USER_AGENT = 'weir-health-check'

export class HealthChecker {
  readonly config: HealthCheckConfig
  private targets: readonly UpstreamTarget[]
  private readonly timer: NodeJS.Timeout
  private readonly running = new Set<UpstreamTarget>()
  private stopped = false

  constructor (config: HealthCheckConfig, targets: readonly UpstreamTarget[]) {
    this.config = config
    this.targets = targets
    this.timer = setInterval(() => this.round(), config.intervalMs)
    this.timer.unref()
    this.round()
  }

  /** Whether this checker probes `targets` with `config` (a snapshot that changes neither keeps it). */
  isFor (config: HealthCheckConfig, targets: readonly UpstreamTarget[]): boolean {
    return JSON.stringify(config) === JSON.stringify(this.config) &&
      targets.length === this.targets.length && targets.every((t, i) => t.pool === this.targets[i]?.pool && t.health === this.targets[i]?.health)
  }

  /** The same hosts in a new table's group objects. */
  retarget (targets: readonly UpstreamTarget[]): void {
    this.targets = targets
  }

  stop (): void {
    this.stopped = true
    clearInterval(this.timer)
  }

  private round (): void {
    // A host whose last probe has not finished (it is slower than the interval) is not probed twice.
    for (const target of this.targets) if (!this.running.has(target)) void this.probe(target)
  }

  private async probe (target: UpstreamTarget): Promise<void> {
    this.running.add(target)
    const { path, timeoutMs, expectedStatuses } = this.config
    let failure: string | null
    try {
      const response = await target.pool.request({
        method: 'GET',
        path,
        headers: { host: target.host, 'user-agent': USER_AGENT },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      })
      await response.body.dump({ limit: 64 * 1024 })
      failure = expectedStatuses.includes(response.statusCode) ? null : `GET ${path} answered ${response.statusCode}`
    } catch (err) {
      const code = (err as { code?: unknown }).code
      failure = `GET ${path} failed (${typeof code === 'string' ? code : (err as Error).name})`
    } finally {
      this.running.delete(target)
    }
    if (this.stopped) return
    const health = target.health
    if (failure === null) {
      health.checkFailures = 0
      if (++health.checkPasses >= this.config.healthyThreshold) health.setCheckHealthy(true, `${health.checkPasses} checks passed in a row`)
    } else {
      health.checkPasses = 0
      if (++health.checkFailures >= this.config.unhealthyThreshold) health.setCheckHealthy(false, `${health.checkFailures} checks failed in a row (the last: ${failure})`)
    }
  }
}
