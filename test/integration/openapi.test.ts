// GET /api/v1/openapi.json against the admin server itself: every route it registered is in the
// document and nothing else is; the document has OpenAPI 3.1's required structure; and the real
// replies of a running weir (a rollout, refusals, stats over traffic, shadow mismatches) validate
// against the document's schema for their path, method and status.

import t, { type Test } from 'tap'
import { FormatRegistry, Kind, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance } from 'fastify'
import { adminClient, type AdminClient } from '../helpers/admin.ts'
import { send } from '../helpers/http.ts'
import { configDoc, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { bareRequest, sleep } from '../helpers/raw-http.ts'
import { settled } from '../helpers/shadow-settled.ts'
import { startUpstreams, type Upstream } from '../helpers/upstream.ts'

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }
interface Document { openapi: string; info: JsonObject; paths: Record<string, Record<string, JsonObject>>; components: { schemas: Record<string, Json>; securitySchemes: JsonObject } }
interface AnyReply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const REF = '#/components/schemas/'

FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v) && !Number.isNaN(Date.parse(v)))

// ---- the document's schemas as TypeBox schemas ----------------------------------------------------

/** The JSON Schema keywords the conversion knows; any other fails the test rather than being ignored. */
const KEYWORDS = new Set([
  '$ref', 'anyOf', 'const', 'type', 'properties', 'required', 'additionalProperties', 'patternProperties', 'items',
  'minItems', 'maxItems', 'uniqueItems', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
  'pattern', 'minLength', 'maxLength', 'format', 'minProperties', 'maxProperties', 'description', 'default', 'title',
])
const KINDS: Record<string, string> = { string: 'String', number: 'Number', integer: 'Integer', boolean: 'Boolean', null: 'Null' }

/** A plain JSON Schema (as served) with TypeBox's Kind symbols added, so Value.Check can judge values by it. */
function typeBox (schema: Json, where: string): TSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error(`${where}: not a schema object`)
  const unknown = Object.keys(schema).filter((k) => !KEYWORDS.has(k))
  if (unknown.length > 0) throw new Error(`${where}: keywords this check does not read: ${unknown.join(', ')}`)
  const sub = (value: Json | undefined, path: string): TSchema => typeBox(value ?? null, `${where}.${path}`)
  const map = (value: Json | undefined, path: string): Record<string, TSchema> =>
    Object.fromEntries(Object.entries((value ?? {}) as JsonObject).map(([k, v]) => [k, sub(v, `${path}.${k}`)]))
  const out: Record<string | symbol, unknown> = { ...schema }
  if (typeof schema.$ref === 'string') {
    if (!schema.$ref.startsWith(REF)) throw new Error(`${where}: $ref outside components.schemas: ${schema.$ref}`)
    out[Kind] = 'Ref'
  } else if (Array.isArray(schema.anyOf)) {
    out.anyOf = schema.anyOf.map((s, i) => sub(s, `anyOf[${i}]`))
    out[Kind] = 'Union'
  } else if ('const' in schema) {
    out[Kind] = 'Literal'
  } else if (schema.type === 'object' && schema.patternProperties !== undefined) {
    if (Object.keys(schema.patternProperties as JsonObject).length !== 1) throw new Error(`${where}: one pattern property expected`)
    out.patternProperties = map(schema.patternProperties, 'patternProperties')
    out[Kind] = 'Record'
  } else if (schema.type === 'object') {
    out.properties = map(schema.properties, 'properties')
    if (typeof schema.additionalProperties === 'object') out.additionalProperties = sub(schema.additionalProperties, 'additionalProperties')
    out[Kind] = 'Object'
  } else if (schema.type === 'array') {
    out.items = sub(schema.items, 'items')
    out[Kind] = 'Array'
  } else if (typeof schema.type === 'string' && KINDS[schema.type] !== undefined) {
    out[Kind] = KINDS[schema.type]
  } else if (schema.type === undefined) {
    out[Kind] = 'Unknown'
  } else {
    throw new Error(`${where}: type ${JSON.stringify(schema.type)} is not read by this check`)
  }
  return out as unknown as TSchema
}

/** Judges JSON values by the document's schemas, `$ref`s resolved through components.schemas. */
function validator (doc: Document): (schema: Json, value: unknown) => string[] {
  const references = Object.entries(doc.components.schemas).map(([name, schema]) =>
    Object.assign(typeBox(schema, `components.schemas.${name}`), { $id: REF + name }))
  return (schema, value) => {
    const converted = typeBox(schema, 'reply')
    if (Value.Check(converted, references, value)) return []
    return [...Value.Errors(converted, references, value)].slice(0, 5).map((e) => `${e.path || '(root)'}: ${e.message}`)
  }
}

// ---- the admin app's routes -------------------------------------------------------------------------

/** `METHOD /path/:param` of every route fastify registered on the app, read from printRoutes (HEAD routes fastify adds to GETs left out). */
function registeredRoutes (app: FastifyInstance): Set<string> {
  const found = new Set<string>()
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (match === null) continue
    const depth = (match[1] as string).length / 4
    const path = (depth === 0 ? '' : stack[depth - 1] ?? '') + (match[2] as string)
    stack.length = depth
    stack[depth] = path
    const methods = match[3]?.split(', ') ?? []
    // The dashboard's static files (/ui/, /ui/app.js, …) are its page's parts, documented as GET /ui.
    if (path.startsWith('/ui/')) continue
    for (const method of methods) if (method !== 'HEAD' || !methods.includes('GET')) found.add(`${method} ${path}`)
  }
  return found
}

function documentedRoutes (doc: Document): Set<string> {
  const found = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) if (METHODS.includes(method)) found.add(`${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)
  }
  return found
}

// ---- a running weir ---------------------------------------------------------------------------------

interface Setup { proxy: TestProxy; api: AdminClient; doc: Document; stable: Upstream; canary: Upstream; green: Upstream }

async function setup (t: Test, extra: Record<string, unknown> = {}, token?: string): Promise<Setup> {
  const [stable, canary, green, shadow] = await startUpstreams(t, 'stable', 'canary', 'green', 'shadow') as [Upstream, Upstream, Upstream, Upstream]
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: stable.url, canary: canary.url, shadow: shadow.url },
    weights: { stable: 100 },
    stickiness: { userId: { header: 'x-user-id' } },
    shadow: { percent: 100, compare: true },
    rollout: {
      // Many steps and lax limits: the rollout is still running when the test pauses it after its first check.
      steps: [10, 20, 30, 40, 50],
      interval: '1s',
      analysis: { minRequests: 1, maxErrorRate: 1, maxP99Ms: 60_000, maxP99Ratio: 1000, failureThreshold: 100 },
      webhooks: [{ name: 'notify', type: 'rollout', url: `${green.url}/hook`, metadata: { team: 'shop' } }],
    },
  }], extra))
  t.teardown(() => proxy.close())
  const api = adminClient(proxy.adminUrl, token)
  const reply = await api.get('/api/v1/openapi.json')
  t.equal(reply.status, 200, 'GET openapi.json')
  return { proxy, api, doc: reply.json<Document>(), stable, canary, green }
}

/** Checks replies against the document and remembers which operations and statuses were seen. */
function replyChecker (t: Test, doc: Document) {
  const judge = validator(doc)
  const seen = new Set<string>()
  return {
    seen,
    check (method: string, template: string, reply: AnyReply): void {
      const name = `${method} ${template} → ${reply.status}`
      const operation = doc.paths[template]?.[method.toLowerCase()]
      if (operation === undefined) {
        t.fail(`${method} ${template} is in the document`)
        return
      }
      const responses = operation.responses as Record<string, JsonObject>
      const response = responses[String(reply.status)] ?? responses.default
      if (response === undefined) {
        t.fail(`${name}: the document declares this status`)
        return
      }
      seen.add(`${method} ${template} ${reply.status}`)
      const content = (response.content ?? {}) as Record<string, JsonObject>
      const type = String(reply.headers['content-type'] ?? '')
      if (content['application/json'] !== undefined) {
        t.match(type, /^application\/json/, `${name}: JSON`)
        const problems = judge(content['application/json'].schema ?? null, JSON.parse(reply.body))
        t.same(problems, [], `${name}: the body matches the document's schema`)
      } else {
        t.ok(Object.keys(content).some((media) => type.startsWith(media)), `${name}: ${type} is a declared media type`)
      }
      if ((response.headers as JsonObject | undefined)?.ETag !== undefined) t.match(reply.headers.etag, /^"[0-9]+"$/, `${name}: ETag`)
    },
  }
}

// ---- tests --------------------------------------------------------------------------------------------

t.test('every route the admin app registered is in the document, and the document names no other', async (t) => {
  const { proxy, doc } = await setup(t)
  const registered = registeredRoutes(proxy.apps.admin)
  t.ok(registered.size >= 20, `printRoutes was read (${registered.size} routes)`)
  const documented = documentedRoutes(doc)
  t.same([...registered].filter((r) => !documented.has(r)).sort(), [], 'no registered route is missing from the document')
  t.same([...documented].filter((r) => !registered.has(r)).sort(), [], 'the document names no route that is not registered')
})

t.test('the document is structurally OpenAPI 3.1', async (t) => {
  const { doc } = await setup(t)
  t.match(doc.openapi, /^3\.1\.[0-9]+$/)
  t.type(doc.info.title, 'string')
  t.type(doc.info.version, 'string')
  t.same(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: String((doc.components.securitySchemes.bearerAuth as JsonObject).description) })
  const text = JSON.stringify(doc)
  for (const [, ref] of text.matchAll(/"\$ref":"([^"]+)"/g)) {
    t.ok(ref?.startsWith(REF) && doc.components.schemas[ref.slice(REF.length)] !== undefined, `${ref} resolves`)
  }
  t.notMatch(text, /"errorMessage"|"\[object Object\]"/, 'no TypeBox or weir internals leak into the schemas')
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    t.match(name, /^[a-zA-Z0-9._-]+$/, `${name}: a component name OpenAPI allows`)
    t.doesNotThrow(() => typeBox(schema, name), `components.schemas.${name} is JSON Schema this test reads`)
  }
  const operationIds = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths)) {
    t.match(path, /^\//, `${path} starts with /`)
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])
    for (const [method, operation] of Object.entries(item)) {
      const at = `${method.toUpperCase()} ${path}`
      t.ok(METHODS.includes(method), `${at}: a method`)
      t.ok(typeof operation.operationId === 'string' && !operationIds.has(operation.operationId), `${at}: a unique operationId`)
      operationIds.add(String(operation.operationId))
      const responses = operation.responses as Record<string, JsonObject>
      t.ok(Object.keys(responses).length > 0, `${at}: responses`)
      t.ok(Object.keys(responses).some((s) => /^2[0-9]{2}$/.test(s)), `${at}: a success response`)
      for (const [status, response] of Object.entries(responses)) {
        t.ok(/^[1-5](?:[0-9]{2}|XX)$/.test(status) || status === 'default', `${at} ${status}: a status code`)
        t.type(response.description, 'string', `${at} ${status}: a description (required)`)
        if (status.startsWith('4') || status.startsWith('5') || status === 'default') {
          const content = response.content as Record<string, JsonObject> | undefined
          if (path.startsWith('/api/v1/')) t.same(content?.['application/json']?.schema, { $ref: `${REF}Error` }, `${at} ${status}: the error shape`)
        }
      }
      const parameters = (operation.parameters ?? []) as JsonObject[]
      for (const p of parameters) {
        t.ok(typeof p.name === 'string' && ['path', 'query', 'header', 'cookie'].includes(String(p.in)) && p.schema !== undefined, `${at}: parameter ${String(p.name)} has name, in and schema`)
        if (p.in === 'path') t.equal(p.required, true, `${at}: path parameter ${String(p.name)} is required`)
      }
      const keys = parameters.map((p) => `${String(p.in)} ${String(p.name).toLowerCase()}`)
      t.equal(new Set(keys).size, keys.length, `${at}: no parameter twice`)
      t.same(parameters.filter((p) => p.in === 'path').map((p) => p.name).sort(), [...templated].sort(), `${at}: every path template is a declared parameter`)
      const body = operation.requestBody as JsonObject | undefined
      if (body !== undefined) t.ok((body.content as JsonObject | undefined)?.['application/json'] !== undefined, `${at}: a JSON request body`)
      const security = operation.security as JsonObject[]
      t.same(security, path.startsWith('/api/v1/') ? [{ bearerAuth: [] }, {}] : [], `${at}: security`)
    }
  }
})

t.test('real replies of every endpoint validate against the document', async (t) => {
  const { proxy, api, doc, green } = await setup(t)
  const { check, seen } = replyChecker(t, doc)
  const get = async (template: string, path = template.replace('{route}', 'shop')): Promise<void> => check('GET', template, await api.get(path))
  const call = async (method: string, template: string, body?: unknown, headers?: Record<string, string>, path = template.replace('{route}', 'shop')) => {
    const reply = await api.call(method, path, body, headers)
    check(method, template, reply)
    return reply
  }
  const traffic = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await send(proxy.url + '/', { headers: { 'x-user-id': `u${Math.random()}` } })
  }

  check('GET', '/healthz', await send(proxy.adminUrl + '/healthz'))
  check('GET', '/readyz', await send(proxy.adminUrl + '/readyz'))
  check('GET', '/metrics', await send(proxy.adminUrl + '/metrics'))
  check('GET', '/ui', await send(proxy.adminUrl + '/ui'))
  await get('/api/v1/openapi.json')
  await get('/api/v1/routes')
  await get('/api/v1/routes/{route}')
  await get('/api/v1/routes/{route}', '/api/v1/routes/nope')

  await traffic(30)
  await settled(proxy)
  await get('/api/v1/routes/{route}/stats', '/api/v1/routes/shop/stats?window=60')
  const stats = (await api.get('/api/v1/routes/shop/stats')).json<{ versions: Record<string, { p50: number; p90: number; p99: number }> }>()
  for (const q of ['p50', 'p90', 'p99'] as const) {
    const value = stats.versions.stable?.[q] as number
    t.ok(value > 0 && Number(value.toPrecision(3)) === value, `${q} ${value} has at most 3 significant digits`)
  }
  const series = await api.get('/api/v1/routes/shop/stats?window=600&series=10')
  check('GET', '/api/v1/routes/{route}/stats', series)
  const points = series.json<{ series: { versions: Record<string, { requests: number; p99: number | null }[]> } }>().series.versions.stable ?? []
  t.ok(points.some((p) => p.requests > 0 && p.p99 !== null) && points.some((p) => p.requests === 0 && p.p99 === null), 'the series validated has points with traffic and without')
  await get('/api/v1/routes/{route}/stats', '/api/v1/routes/shop/stats?series=0')
  await get('/api/v1/routes/{route}/stats', '/api/v1/routes/shop/stats?window=30&scope=fleet')
  await get('/api/v1/routes/{route}/stats', '/api/v1/routes/shop/stats?histograms=true')
  await get('/api/v1/routes/{route}/stats', '/api/v1/routes/shop/stats?window=0')
  const mismatches = await api.get('/api/v1/routes/shop/shadow/mismatches')
  t.ok(mismatches.json<{ samples: unknown[] }>().samples.length > 0, 'the shadow (another name in its body) mismatched')
  check('GET', '/api/v1/routes/{route}/shadow/mismatches', mismatches)
  await get('/api/v1/routes/{route}/shadow/mismatches', '/api/v1/routes/shop/shadow/mismatches?limit=1000')

  await call('PUT', '/api/v1/routes/{route}/weights', { stable: 90, canary: 10 }, { 'if-match': '"0"' })
  await call('PUT', '/api/v1/routes/{route}/weights', { stable: 100 }, { 'if-match': '0' })
  const invalid = await call('PUT', '/api/v1/routes/{route}/weights', { stable: 90, canary: 9 })
  t.match(invalid.json(), { error: 'WEIR_ERR_ADMIN_INVALID', problems: [{ path: 'weights' }] })
  await call('PUT', '/api/v1/routes/{route}/weights', { stable: 100 }, { 'content-type': 'text/plain' })
  await call('PUT', '/api/v1/routes/{route}/upstreams', { green: green.url })
  await call('PUT', '/api/v1/routes/{route}/shadow', { percent: 50, ignore: { json: ['$.url'] } })
  await call('PUT', '/api/v1/routes/{route}/rules', [{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary' }])
  await call('PUT', '/api/v1/routes/{route}/rules', [{ match: { header: { name: 'x-beta', regex: '(a+)+$' } }, version: 'canary' }])
  await get('/api/v1/routes/{route}/cohort', '/api/v1/routes/shop/cohort?userId=alice')
  await get('/api/v1/routes/{route}/cohort', '/api/v1/routes/shop/cohort?userId=alice&cookie=x')
  await call('POST', '/api/v1/routes/{route}/switch', { to: 'green' })
  check('POST', '/api/v1/routes/{route}/rollback', await bareRequest(proxy.adminUrl, 'POST', '/api/v1/routes/shop/rollback'))
  // Back to the file's values, then the live settings the rest of the run needs again.
  check('POST', '/api/v1/routes/{route}/reset', await bareRequest(proxy.adminUrl, 'POST', '/api/v1/routes/shop/reset'))
  await call('PUT', '/api/v1/routes/{route}/upstreams', { green: green.url })
  await call('PUT', '/api/v1/routes/{route}/shadow', { percent: 50, ignore: { json: ['$.url'] } })

  // A canary rollout with the route's own policy, until its first check has run.
  check('POST', '/api/v1/routes/{route}/rollout', await bareRequest(proxy.adminUrl, 'POST', '/api/v1/routes/shop/rollout'))
  await call('POST', '/api/v1/routes/{route}/rollout', {})
  await call('PUT', '/api/v1/routes/{route}/weights', { stable: 100 })
  const deadline = Date.now() + 10_000
  let rollout = await api.get('/api/v1/routes/shop/rollout')
  while (rollout.json<{ rollout: { lastCheck: unknown } }>().rollout.lastCheck === null && Date.now() < deadline) {
    await traffic(20)
    await sleep(50)
    rollout = await api.get('/api/v1/routes/shop/rollout')
  }
  t.not(rollout.json<{ rollout: { lastCheck: unknown } }>().rollout.lastCheck, null, 'a check ran')
  check('GET', '/api/v1/routes/{route}/rollout', rollout)
  await call('POST', '/api/v1/routes/{route}/rollout/pause')
  await call('POST', '/api/v1/routes/{route}/rollout/pause')
  await call('POST', '/api/v1/routes/{route}/rollout/resume')
  await call('POST', '/api/v1/routes/{route}/rollout/promote')
  await call('POST', '/api/v1/routes/{route}/rollout/abort')
  await call('POST', '/api/v1/routes/{route}/rollout/promote', undefined, undefined, '/api/v1/routes/shop/rollout/promote?full=true')
  await get('/api/v1/routes/{route}/rollout')

  await get('/api/v1/events')
  await get('/api/v1/events', '/api/v1/events?since=2&limit=3')
  await get('/api/v1/events', '/api/v1/events?limit=0')
  await get('/api/v1/workers')
  await get('/api/v1/fleet')

  const successes = [...documentedRoutes(doc)].map((r) => r.replace(/:([a-z]+)/g, '{$1}'))
    .filter((r) => ![...seen].some((s) => s.startsWith(r + ' 2')))
  t.same(successes, [], 'every operation was seen answering 2xx')
  for (const status of [400, 404, 409, 412, 415]) t.ok([...seen].some((s) => s.endsWith(` ${status}`)), `a ${status} was checked`)
})

t.test('the check fails replies that do not match: a field too many, a wrong type, a missing field', async (t) => {
  const { api, doc } = await setup(t)
  const judge = validator(doc)
  const schemaOf = (path: string): Json => ((doc.paths[path]?.get?.responses as Record<string, JsonObject>)['200']?.content as Record<string, JsonObject>)['application/json']?.schema ?? null
  const route = (await api.get('/api/v1/routes/shop')).json()
  t.same(judge(schemaOf('/api/v1/routes/{route}'), route), [], 'the real reply passes')
  t.not(judge(schemaOf('/api/v1/routes/{route}'), { ...route, extra: 1 }), [], 'an undocumented field fails')
  t.not(judge(schemaOf('/api/v1/routes/{route}'), { ...route, revision: '0' }), [], 'a wrong type fails')
  const { weights: _weights, ...withoutWeights } = route
  t.not(judge(schemaOf('/api/v1/routes/{route}'), withoutWeights), [], 'a missing field fails')
  const rollout = (await api.get('/api/v1/routes/shop/rollout')).json()
  t.not(judge(schemaOf('/api/v1/routes/{route}/rollout'), { ...rollout, phase: 'sleeping' }), [], 'an unknown phase fails')
  t.not(judge(schemaOf('/api/v1/routes/{route}/rollout'), { ...rollout, failSafe: { rollout: 'x' } }), [], 'an incomplete failSafe fails (through its $ref)')
})

t.test('openapi.json follows the rest of /api/v1: a configured token is required', async (t) => {
  const token = 'tok-' + 'o'.repeat(40)
  const { proxy, doc } = await setup(t, { admin: { host: '127.0.0.1', port: 0, token } }, token)
  const { check } = replyChecker(t, doc)
  const anonymous = await adminClient(proxy.adminUrl).get('/api/v1/openapi.json')
  t.equal(anonymous.status, 401)
  check('GET', '/api/v1/openapi.json', anonymous)
  t.match(String(anonymous.headers['www-authenticate']), /^Bearer realm="weir-admin"$/)
})

t.test('GET workers validates with worker processes too', { skip: process.platform === 'win32' }, async (t) => {
  const { api, doc } = await setup(t, { workers: 2 })
  const { check } = replyChecker(t, doc)
  const reply = await api.get('/api/v1/workers')
  t.equal(reply.json<{ workers: unknown[] }>().workers.length, 2)
  check('GET', '/api/v1/workers', reply)
})
