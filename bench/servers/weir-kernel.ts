// weir exactly as `weir serve --config <config>` runs it, with connections spread by the kernel
// (each worker binds the port with SO_REUSEPORT) instead of node:cluster's round-robin, so
// bench/workers.ts can compare the two. Usage: node bench/servers/weir-kernel.ts <config>

import { serve } from '../../src/server.ts'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: weir-kernel.ts <config>')
await serve(file, { balance: 'kernel' })
