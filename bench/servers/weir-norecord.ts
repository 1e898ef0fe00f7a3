// weir exactly as `weir serve --config <config>` runs it (same serve(): listeners, signals,
// drain), but built with the internal option recordRequests: false: no weir_requests_total,
// weir_request_duration_seconds or rolling stats per request, so bench/run.ts can measure what
// that recording costs. Usage: node bench/servers/weir-norecord.ts <config>

import { serve } from '../../src/server.ts'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: weir-norecord.ts <config>')
await serve(file, { recordRequests: false })
