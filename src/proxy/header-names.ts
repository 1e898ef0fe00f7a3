// The header names weir itself adds on the way upstream: a leaf, so the forwarding and the
// shadow copy share them without importing each other.

/** Marks a shadow copy; a client's own is dropped like a hop-by-hop header. */
export const SHADOW_HEADER = 'x-weir-shadow'

/** The request header that tells the upstream which version it is serving as. */
export const UPSTREAM_VERSION_HEADER = 'x-weir-version'

export { OVERRIDE_SECRET_HEADER, SMOKE_HEADER } from '../routing/smoke.ts'
