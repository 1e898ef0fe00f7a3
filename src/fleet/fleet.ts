// A replica's place in its fleet (docs/fleet.md): its registration (a key under a lease,
// `<prefix>members/<id>`, with the URL of its admin API), the controller's leader election (an
// etcd election on a lease: exactly one replica drives rollouts), and the fence its controller's
// writes carry (the campaign key must still exist, so a replica that lost its lease cannot write).
// Without etcd, a replica is a fleet of one and its own leader.

import { setTimeout as delay } from 'node:timers/promises'
import type { Campaign, ElectionObserver, Lease, Namespace } from 'etcd3'
import type { LatencyHistogram } from '../metrics/rolling-stats.ts'

/** The lease of a replica's registration and candidacy: a replica that stops is gone this long after. */
export const LEASE_TTL_SECONDS = 5
const ELECTION = 'controller'
const MEMBERS = 'members/'

export interface Member {
  readonly id: string
  /** The URL its admin API is reached at ('' until it listens, when none is configured). */
  admin: string
}

export interface FleetView {
  readonly self: string
  readonly leader: string | null
  readonly members: readonly Member[]
}

export interface Fleet {
  readonly self: Member
  /** Registers and campaigns, once the admin API listens at `admin` (unless an address was configured). */
  join (admin: string): void
  /** Whether this replica drives rollouts now. */
  isLeader (): boolean
  /** Told each time this replica gains (true) or loses (false) leadership. */
  onLeadership (listener: (leader: boolean) => void): void
  /** The key a controller write must find in etcd (this replica's candidacy); null when not leader or without etcd. */
  fence (): string | null
  view (): Promise<FleetView>
  close (): Promise<void>
}

export interface FleetLog {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

/** A fleet of one: no etcd, this replica leads. */
export function soloFleet (self: Member): Fleet {
  return {
    self,
    join (admin) { if (self.admin === '') self.admin = admin },
    isLeader: () => true,
    onLeadership () {},
    fence: () => null,
    view: async () => ({ self: self.id, leader: self.id, members: [self] }),
    close: async () => {},
  }
}

/** Registers this replica under `client` (the fleet's prefix) and campaigns for leadership. */
export function etcdFleet (client: Namespace, self: Member, log: FleetLog): Fleet {
  let joined = false
  const members = client.namespace(MEMBERS)
  const election = client.election(ELECTION, LEASE_TTL_SECONDS)
  const listeners = new Set<(leader: boolean) => void>()
  let leader = false
  let leaderId: string | null = null
  let campaignKey: string | null = null
  let campaign: Campaign | null = null
  let registration: Lease | null = null
  const life = { closed: false }
  let lastMembers: Member[] = [self]

  const setLeader = (next: boolean): void => {
    if (next === leader) return
    leader = next
    if (next) leaderId = self.id
    log.info({ replica: self.id }, next ? `fleet: ${self.id} is the leader; it drives rollouts` : `fleet: ${self.id} is no longer the leader`)
    for (const listener of listeners) listener(next)
  }

  const register = async (): Promise<void> => {
    while (!life.closed) {
      try {
        const lease = client.lease(LEASE_TTL_SECONDS)
        registration = lease
        await lease.put(MEMBERS + self.id).value(JSON.stringify(self))
        await new Promise<void>((resolve) => lease.once('lost', () => resolve()))
        await lease.revoke().catch(() => undefined)
        if (life.closed) return
        log.warn({ replica: self.id }, 'fleet: the registration lease was lost (etcd away?); registering again')
      } catch {
        // etcd away: retried below.
      }
      if (!life.closed) await delay(1000)
    }
  }

  const campaignLoop = async (): Promise<void> => {
    while (!life.closed) {
      try {
        const current = election.campaign(self.id)
        campaign = current
        await new Promise<void>((resolve) => {
          current.on('elected', () => {
            void current.getCampaignKey().then((key) => {
              campaignKey = key
              setLeader(true)
            })
          })
          // The lease was lost (etcd away longer than the TTL): no longer a candidate, let alone leader.
          current.on('error', () => resolve())
        })
        // Stops the lost campaign's own retries before a new one starts.
        await current.resign().catch(() => undefined)
      } catch {}
      campaignKey = null
      setLeader(false)
      if (!life.closed) await delay(1000)
    }
  }

  let observer: ElectionObserver | null = null
  // The observer follows the leader key through outages on its own (it re-reads on reconnect).
  const observe = async (): Promise<void> => {
    try {
      const current = await election.observe()
      observer = current
      if (life.closed) await current.cancel()
      leaderId = current.leader() ?? null
      current.on('change', (value) => { leaderId = value ?? null })
      current.on('error', () => { leaderId = null })
    } catch {
      // etcd away at the start: the leader stays unknown (null) in GET /api/v1/fleet.
    }
  }

  return {
    self,
    join (admin) {
      if (joined || life.closed) return
      joined = true
      if (self.admin === '') self.admin = admin
      void register()
      void campaignLoop()
      void observe()
    },
    isLeader: () => leader,
    onLeadership (listener) { listeners.add(listener) },
    fence: () => (leader ? campaignKey : null),
    async view () {
      try {
        const found = await members.getAll().strings()
        lastMembers = Object.values(found).map((v) => JSON.parse(v) as Member).filter((m) => typeof m.id === 'string' && typeof m.admin === 'string')
          .sort((a, b) => a.id.localeCompare(b.id))
      } catch {
        // etcd away: the members last seen.
      }
      // This replica is a member from its start, before its registration is in etcd.
      const all = lastMembers.some((m) => m.id === self.id) ? lastMembers : [...lastMembers, self].sort((a, b) => a.id.localeCompare(b.id))
      return { self: self.id, leader: leader ? self.id : leaderId, members: all }
    },
    async close () {
      life.closed = true
      setLeader(false)
      await Promise.all([
        campaign?.resign().catch(() => undefined),
        registration?.revoke().catch(() => undefined),
        observer?.cancel().catch(() => undefined),
      ])
    },
  }
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
