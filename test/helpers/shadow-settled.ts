// Waiting for a proxy's shadow copies to finish, so a test reads their counts and comparisons
// only once every copy has been recorded.

import { sleep } from './raw-http.ts'
import type { TestProxy } from './proxy.ts'

/** Resolves once no route has a copy in flight (then 50 ms more); throws after `limitMs`. */
export async function settled (proxy: TestProxy, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs
  const inFlight = async (): Promise<boolean> => {
    // With workers, their counts arrive with their readings.
    await proxy.apps.dataPlane.flush()
    return proxy.config.routes.some((r) => proxy.apps.dataPlane.shadowInFlight(r.name) > 0)
  }
  while (await inFlight()) {
    if (performance.now() > deadline) throw new Error(`shadow copies still in flight after ${limitMs} ms`)
    await sleep(10)
  }
  // The primary's side of a comparison may be recorded a moment after its copy settled.
  await sleep(50)
  await proxy.apps.dataPlane.flush()
}
