// The proxy listener's certificate and key: read from their files at start, and again when a
// snapshot's `server.tls.revision` moves on (each SIGHUP reload), so a renewed certificate needs
// no restart. The snapshot names files only; the key material is read here, in each data-path
// process, and never leaves it. A pair that cannot be used is refused in `prepare`, before
// anything changes, so a reload puts it in force on every process or on none.

import { readFileSync } from 'node:fs'
import type { Server } from 'node:https'
import { createSecureContext } from 'node:tls'
import { WeirError } from '../errors.ts'
import type { ListenerTls } from '../snapshot.ts'

export interface CertificatePair {
  readonly cert: Buffer
  readonly key: Buffer
}

export interface ListenerCertificate {
  /** The pair in force (the server is created with it, then changed through `prepare`). */
  readonly pair: CertificatePair
  /**
   * Re-reads and checks the files when `tls` is a newer revision (throws WEIR_ERR_LISTEN_TLS when
   * they cannot be used); `commit` gives new handshakes on `server` the new pair, while open
   * connections keep theirs. Null when there is nothing to do, as when TLS was removed from the
   * config (that takes a restart).
   */
  prepare (tls: ListenerTls | undefined): { commit (server: Server): void } | null
}

/** Reads the pair `first` names; throws WEIR_ERR_LISTEN_TLS when it cannot be used. */
export function createListenerCertificate (first: ListenerTls): ListenerCertificate {
  let pair = readPair(first)
  let revision = first.revision
  return {
    get pair () {
      return pair
    },
    prepare (tls) {
      if (tls === undefined || tls.revision === revision) return null
      const next = readPair(tls)
      // A reload that changed neither file costs no new TLS context.
      const changed = !next.cert.equals(pair.cert) || !next.key.equals(pair.key)
      return {
        commit (server) {
          if (changed) server.setSecureContext({ cert: next.cert, key: next.key })
          pair = next
          revision = tls.revision
        },
      }
    },
  }
}

function readPair (tls: ListenerTls): CertificatePair {
  try {
    const pair = { cert: readFileSync(tls.cert), key: readFileSync(tls.key) }
    // Throws as the listener would on a key that does not match the certificate, or on bad PEM.
    createSecureContext(pair)
    return pair
  } catch (err) {
    throw new WeirError('WEIR_ERR_LISTEN_TLS', `listen.tls: the certificate ${tls.cert} and key ${tls.key} cannot be used: ${(err as Error).message}`, { cause: err })
  }
}
