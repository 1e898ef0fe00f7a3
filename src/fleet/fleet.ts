// A replica's place in its fleet (docs/fleet.md): its registration (a key under a lease,
// `<prefix>members/<id>`, with the URL of its admin API), the controller's leader election (an
// etcd election on a lease: exactly one replica drives rollouts), and the fence its controller's
// writes carry (the campaign key must still exist, so a replica that lost its lease cannot write).
// Without etcd, a replica is a fleet of one and its own leader.

import { setTimeout as delay } from 'node:timers/promises'
import type { Lease, Namespace } from 'etcd3'

/**
 * A leader steps down when its candidacy's lease was last renewed this share of the TTL ago:
 * before etcd can expire it (TTL after the last renewal) and elect another, so two replicas never
 * both believe they lead (the client itself declares a lease lost only after twice its TTL).
 * Renewals go every third of the TTL.
 */
const STEP_DOWN_SHARE = 0.8
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
  /** The id of the replica that leads, as last read (null while none is known). */
  leader (): string | null
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
    leader: () => self.id,
    onLeadership () {},
    fence: () => null,
    view: async () => ({ self: self.id, leader: self.id, members: [self] }),
    close: async () => {},
  }
}

/**
 * Registers this replica under `client` (the fleet's prefix) and stands in the controller's
 * election. The election is etcd's usual one, kept small enough to check by reading: each
 * candidate holds a key `election/controller/<lease>` under its own lease, and the leader is the
 * candidate whose key is the oldest (lowest create revision). New keys are always younger, so a
 * leader stays leader while its key exists; a replica that dies or is cut off loses its lease,
 * its key goes, and the next oldest leads. Every replica reads the oldest key four times a second.
 */
/**
 * `leaseTtlSeconds` (config `fleet.leaseTtl`): the lease of this replica's registration and
 * candidacy; a replica that stops is gone this long after.
 */
export function etcdFleet (client: Namespace, self: Member, log: FleetLog, leaseTtlSeconds = 5): Fleet {
  const stepDownAfterMs = leaseTtlSeconds * 1000 * STEP_DOWN_SHARE
  let joined = false
  const members = client.namespace(MEMBERS)
  const candidates = client.namespace(`election/${ELECTION}/`)
  const candidatesPrefix = `${client.prefix.toString()}election/${ELECTION}/`
  const listeners = new Set<(leader: boolean) => void>()
  let leader = false
  let leaderId: string | null = null
  /** This replica's candidate key (full), while its lease holds. */
  let candidateKey: string | null = null
  /** When the candidacy's lease was last granted or renewed (epoch ms). */
  let candidacyRenewedAt = 0
  const candidacyFresh = (): boolean => Date.now() - candidacyRenewedAt < stepDownAfterMs
  const leases = new Set<Lease>()
  const life = { closed: false }
  let lastMembers: Member[] = [self]
  let poll: NodeJS.Timeout | null = null

  const leaderOf = (): string | null => (leader ? self.id : leaderId)

  const setLeader = (next: boolean): void => {
    if (next === leader) return
    leader = next
    log.info({ replica: self.id }, next ? `fleet: ${self.id} is the leader; it drives rollouts` : `fleet: ${self.id} is no longer the leader`)
    for (const listener of listeners) listener(next)
  }

  /** Puts `key(lease)` (under the fleet's prefix) with `value` under a fresh lease; again whenever the lease is lost. */
  const holdUnderLease = async (key: (lease: string) => string, value: string, held: (fullKey: string | null) => void, renewed: () => void = () => {}): Promise<void> => {
    while (!life.closed) {
      const lease = client.lease(leaseTtlSeconds)
      leases.add(lease)
      lease.on('keepaliveSucceeded', renewed)
      try {
        const id = await lease.grant()
        renewed()
        await lease.put(key(id)).value(value)
        held(client.prefix.toString() + key(id))
        await new Promise<void>((resolve) => lease.once('lost', () => resolve()))
        held(null)
        log.warn({ replica: self.id }, 'fleet: a lease was lost (etcd away longer than its TTL?); taking a new one')
      } catch {
        held(null)
      }
      leases.delete(lease)
      await lease.revoke().catch(() => undefined)
      if (!life.closed) await delay(1000)
    }
  }

  /** This replica no longer leads, and cannot know who does. */
  const stepDown = (): void => {
    if (leaderId === self.id) leaderId = null
    setLeader(false)
  }

  /** Who leads now: the oldest candidate key. */
  const look = async (): Promise<void> => {
    // Cut off from etcd for most of the lease: step down before etcd could elect another.
    if (leader && !candidacyFresh()) {
      // How stale the lease was, so an operator (and the outage test) sees which TTL was applied.
      const sinceRenewalMs = Date.now() - candidacyRenewedAt
      log.warn({ replica: self.id, sinceRenewalMs, leaseTtlSeconds },
        `fleet: ${self.id} steps down: its lease was last renewed ${sinceRenewalMs} ms ago (the lease is ${leaseTtlSeconds} s; it steps down at ${STEP_DOWN_SHARE * 100} %)`)
      stepDown()
    }
    try {
      const oldest = await candidates.getAll().sort('Create', 'Ascend').limit(1).exec()
      const kv = oldest.kvs[0]
      leaderId = kv === undefined ? null : kv.value.toString()
      const mine = candidateKey
      setLeader(kv !== undefined && mine !== null && candidatesPrefix + kv.key.toString() === mine && candidacyFresh())
    } catch {
      // etcd away: no decision can be written anyway (fenced); leadership is re-read when it answers.
    }
  }

  return {
    self,
    join (admin) {
      if (joined || life.closed) return
      joined = true
      if (self.admin === '') self.admin = admin
      void holdUnderLease(() => MEMBERS + self.id, JSON.stringify(self), () => {})
      void holdUnderLease((lease) => `election/${ELECTION}/${lease}`, self.id, (key) => {
        candidateKey = key
        if (key === null) stepDown()
        void look()
      }, () => { candidacyRenewedAt = Date.now() })
      poll = setInterval(() => { void look() }, 250)
      poll.unref()
    },
    isLeader: () => leader,
    leader: leaderOf,
    onLeadership (listener) { listeners.add(listener) },
    fence: () => (leader ? candidateKey : null),
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
      return { self: self.id, leader: leaderOf(), members: all }
    },
    async close () {
      life.closed = true
      if (poll !== null) clearInterval(poll)
      setLeader(false)
      // Revoking deletes the keys at once: another replica leads without waiting for the TTL.
      await Promise.all([...leases].map((lease) => lease.revoke().catch(() => undefined)))
    },
  }
}
