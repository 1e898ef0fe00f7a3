// The fast guard's rule on its own: the run of errors it judges starts when it began watching
// (a rollout, an upstream), however long the stats' run is.

import t from 'tap'
import { guardVerdict, streakSince, type GuardSample } from '../../src/rollout/guard.ts'
import { runningRollout } from '../helpers/rollout-state.ts'

const T0 = 1_700_000_000_000
/** A canary at its first step (10 %), with the guard's defaults: maxErrorRate 0.5, minRequests 20. */
const rollout = runningRollout(0, T0)

t.test('the error run counts only from the start of the watch', async (t) => {
  t.equal(streakSince({ requests: 100, errors: 31, consecutiveErrors: 31 }, 31), 0, 'the whole run is older than the watch')
  t.equal(streakSince({ requests: 101, errors: 32, consecutiveErrors: 32 }, 31), 1, 'it went on: only its new part counts')
  t.equal(streakSince({ requests: 150, errors: 35, consecutiveErrors: 3 }, 31), 3, 'a run that began within the watch counts whole')
  t.equal(streakSince({ requests: 150, errors: 60, consecutiveErrors: 25 }, 31), 25)
})

t.test('a run that reverted the last rollout does not trip the guard of the next at its first failure', async (t) => {
  // The stats' run is 31 (20 would trip); the new rollout's watch began at 31 errors.
  const samples: GuardSample[] = [{ at: T0, requests: 200, errors: 31 }, { at: T0 + 500, requests: 201, errors: 32 }]
  const totals = { requests: 201, errors: 32, consecutiveErrors: 32 }
  t.equal(guardVerdict(rollout, samples, totals, 31, T0 + 500), null, 'one failure in this rollout')
  t.match(guardVerdict(rollout, samples, totals, 0, T0 + 500), { verdict: 'fail', value: 32 }, 'counted from the process start it would revert')
  const twenty = { requests: 220, errors: 51, consecutiveErrors: 51 }
  // The last second saw 10 of them (too few for the error-rate rule): the run decides.
  t.match(guardVerdict(rollout, [{ at: T0, requests: 210, errors: 41 }, { at: T0 + 500, requests: 220, errors: 51 }], twenty, 31, T0 + 500),
    { verdict: 'fail', value: 20, detail: 'canary failed 20 requests in a row (the guard allows fewer than 20)' }, '20 failures in this rollout do')
})
