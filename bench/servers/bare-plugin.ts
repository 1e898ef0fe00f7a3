// Baseline proxy: fastify + @fastify/http-proxy with only `upstream` set (the plugin's
// defaults: reply-from over its own undici), logger off. Usage: node bench/servers/bare-plugin.ts <port> <upstream>

import fastify from 'fastify'
import httpProxy from '@fastify/http-proxy'

const port = Number(process.argv[2] ?? 18090)
const upstream = process.argv[3] ?? 'http://127.0.0.1:18081'

const app = fastify({ logger: false })
await app.register(httpProxy, { upstream })
await app.listen({ host: '127.0.0.1', port })
process.stdout.write(`bare @fastify/http-proxy listening on ${port} -> ${upstream}\n`)
process.on('SIGTERM', () => process.exit(0))
