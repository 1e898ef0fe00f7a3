import t from 'tap'
import { createHash } from 'node:crypto'
import { gzipSync } from 'node:zlib'
import {
  BodyCapture, compareResponses, compileCompareRules, JSON_COMPARE_MAX_BYTES, MAX_DIFF_ENTRIES, VOLATILE_HEADERS,
  type CapturedResponse, type CompareRules,
} from '../../src/shadow/compare.ts'
import { parseJsonPath } from '../../src/shadow/json-path.ts'

const JSON_TYPE = 'application/json; charset=utf-8'

function capture (body: string | Buffer, contentType: string | undefined = JSON_TYPE, contentEncoding?: string) {
  const c = new BodyCapture(contentType, contentEncoding)
  c.write(typeof body === 'string' ? Buffer.from(body) : body)
  return c.end()
}

function response (body: unknown, opts: { status?: number; headers?: Record<string, string | string[] | undefined>; contentType?: string } = {}): CapturedResponse {
  const contentType = opts.contentType ?? JSON_TYPE
  const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
  return {
    status: opts.status ?? 200,
    headers: { 'content-type': contentType, ...opts.headers },
    body: capture(text, contentType, opts.headers?.['content-encoding'] as string | undefined),
  }
}

const noRules = compileCompareRules({ ignoreHeaders: [], ignoreJson: [] })
const rules = (ignoreJson: string[], ignoreHeaders: string[] = []): CompareRules => compileCompareRules({ ignoreHeaders, ignoreJson })

t.test('identical responses match', async (t) => {
  const body = { id: 1, items: [{ a: 1 }], ok: true }
  t.same(compareResponses(response(body), response(body), noRules), { kinds: [], diff: [] })
})

t.test('a different status is the only thing reported, headers and body aside', async (t) => {
  const result = compareResponses(
    response({ a: 1 }, { headers: { 'x-a': '1' } }),
    response({ a: 2 }, { status: 500, headers: { 'x-a': '2' } }),
    noRules
  )
  t.same(result, { kinds: ['status'], diff: [{ path: 'status', primary: '200', shadow: '500' }] })
})

t.test('a custom header that differs or is missing on one side is a headers mismatch, one entry per header by name', async (t) => {
  const result = compareResponses(
    response({ a: 1 }, { headers: { 'x-cache': 'hit', 'x-b': ['1', '2'], 'x-only-primary': 'p' } }),
    response({ a: 1 }, { headers: { 'x-cache': 'miss', 'x-b': '1, 2', 'x-only-shadow': undefined } }),
    noRules
  )
  t.same(result.kinds, ['headers'])
  t.same(result.diff, [
    { path: 'headers.x-cache', primary: 'hit', shadow: 'miss' },
    { path: 'headers.x-only-primary', primary: 'p', shadow: '(absent)' },
  ], 'a string[] value equals its joined form; an undefined value is absent on both sides')
})

t.test('headers differing only in volatile or configured names match', async (t) => {
  const ignoring = rules([], ['X-Trace-Id'])
  const result = compareResponses(
    response({ a: 1 }, { headers: { date: 'Mon, 01 Jan 2024 00:00:00 GMT', server: 'a', etag: '"1"', 'x-trace-id': 'abc' } }),
    response({ a: 1 }, { headers: { date: 'Tue, 02 Jan 2024 00:00:00 GMT', server: 'b', 'x-trace-id': 'def', 'set-cookie': ['s=1'] } }),
    ignoring
  )
  t.same(result, { kinds: [], diff: [] })
})

t.test('compileCompareRules lower-cases header names, includes the volatile ones, and refuses a bad path', async (t) => {
  const compiled = rules(['$.meta.timestamp', 'items[*].id'], ['X-Trace-Id'])
  t.ok(compiled.ignoreHeaders.has('x-trace-id'))
  t.notOk(compiled.ignoreHeaders.has('X-Trace-Id'))
  for (const name of VOLATILE_HEADERS) t.ok(compiled.ignoreHeaders.has(name), name)
  t.ok(VOLATILE_HEADERS.has('date') && VOLATILE_HEADERS.has('x-weir-shadow') && VOLATILE_HEADERS.has('content-length'))
  t.same(compiled.ignorePaths, [
    [{ kind: 'key', key: 'meta' }, { kind: 'key', key: 'timestamp' }],
    [{ kind: 'key', key: 'items' }, { kind: 'any' }, { kind: 'key', key: 'id' }],
  ])
  t.throws(() => rules(['a..b']), /a\.\.b/)
})

t.test('a JSON field that differs is a body mismatch at its path, with both values', async (t) => {
  const result = compareResponses(response({ name: 'x', price: 10 }), response({ name: 'x', price: 12.5 }), noRules)
  t.same(result, { kinds: ['body'], diff: [{ path: '$.price', primary: '10', shadow: '12.5' }] })
})

t.test('a JSON body differing only in an ignored field matches', async (t) => {
  const ignoring = rules(['$.meta.timestamp'])
  const primary = response({ data: [1, 2], meta: { timestamp: '2024-01-01T00:00:00Z', v: 1 } })
  const shadow = response({ data: [1, 2], meta: { timestamp: '2024-01-01T00:00:09Z', v: 1 } })
  t.same(compareResponses(primary, shadow, ignoring), { kinds: [], diff: [] })
  t.same(compareResponses(primary, shadow, noRules).diff, [{ path: '$.meta.timestamp', primary: '"2024-01-01T00:00:00Z"', shadow: '"2024-01-01T00:00:09Z"' }])
})

t.test('items[*].id ignores the id of every item, not a different name in items[1]', async (t) => {
  const ignoring = rules(['items[*].id'])
  const primary = response({ items: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }] })
  t.same(compareResponses(primary, response({ items: [{ id: 7, name: 'a' }, { id: 8, name: 'b' }] }), ignoring).kinds, [])
  const result = compareResponses(primary, response({ items: [{ id: 7, name: 'a' }, { id: 8, name: 'B' }] }), ignoring)
  t.same(result, { kinds: ['body'], diff: [{ path: '$.items[1].name', primary: '"b"', shadow: '"B"' }] })
})

t.test('an index path ignores that element only, without shifting the others', async (t) => {
  const ignoring = rules(['items[0]'])
  t.same(compareResponses(response({ items: ['x', 'b', 'c'] }), response({ items: ['y', 'b', 'c'] }), ignoring).kinds, [])
  t.same(compareResponses(response({ items: ['x', 'b', 'c'] }), response({ items: ['x', 'b', 'd'] }), ignoring).diff,
    [{ path: '$.items[2]', primary: '"c"', shadow: '"d"' }])
})

t.test('an ignore path whose prefix does not exist, or meets another type, changes nothing', async (t) => {
  const ignoring = rules(['nope.deeper', 'a[0]', 'list.key'])
  t.same(compareResponses(response({ a: { 0: 1 }, list: [1] }), response({ a: { 0: 1 }, list: [1] }), ignoring).kinds, [])
  t.same(compareResponses(response({ a: { 0: 1 } }), response({ a: { 0: 2 } }), ignoring).diff,
    [{ path: '$.a["0"]', primary: '1', shadow: '2' }], 'an index segment does not match an object key')
})

t.test('object key order does not matter; array order does; 1 and 1.0 are equal', async (t) => {
  t.same(compareResponses(response('{"a":1,"b":{"c":2,"d":3}}'), response('{"b":{"d":3,"c":2.0},"a":1.0}'), noRules).kinds, [])
  t.same(compareResponses(response({ a: [1, 2] }), response({ a: [2, 1] }), noRules).diff, [
    { path: '$.a[0]', primary: '1', shadow: '2' },
    { path: '$.a[1]', primary: '2', shadow: '1' },
  ])
})

t.test('missing keys and elements show as (absent); a type change is one entry with the compared value', async (t) => {
  const ignoring = rules(['meta.timestamp'])
  const result = compareResponses(
    response({ a: 1, meta: { timestamp: 1, v: 2 }, list: [1, 2, 3], 'a.b': { x: 1 } }),
    response({ list: [1, 2], 'a.b': [1], extra: true }),
    ignoring
  )
  t.same(result.kinds, ['body'])
  t.same(result.diff, [
    { path: '$.a', primary: '1', shadow: '(absent)' },
    { path: '$.meta', primary: '{"v":2}', shadow: '(absent)' },
    { path: '$.list[2]', primary: '3', shadow: '(absent)' },
    { path: '$["a.b"]', primary: '{"x":1}', shadow: '[1]' },
    { path: '$.extra', primary: '(absent)', shadow: 'true' },
  ], 'document order of the primary, then keys only the shadow has')
})

t.test('long values are cut to 120 characters with an ellipsis', async (t) => {
  const result = compareResponses(response({ s: 'a'.repeat(500) }), response({ s: { list: Array.from({ length: 500 }, (_, i) => i) } }), noRules)
  const [entry] = result.diff
  t.equal(entry?.primary.length, 120)
  t.ok(entry?.primary.startsWith('"aaa') && entry.primary.endsWith('…'))
  t.equal(entry?.shadow.length, 120)
  t.ok(entry?.shadow.startsWith('{"list":[0,1,2,'))
})

t.test('more than 10 differences give 10 entries, headers first, and still report both kinds', async (t) => {
  const many = (v: number): Record<string, number> => Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, v]))
  const body = compareResponses(response(many(1)), response(many(2)), noRules)
  t.same(body.kinds, ['body'])
  t.equal(body.diff.length, MAX_DIFF_ENTRIES)
  t.same(body.diff.map((e) => e.path), Array.from({ length: 10 }, (_, i) => `$.k${i}`))

  const headers = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`x-h${String(i).padStart(2, '0')}`, 'a']))
  const both = compareResponses(response(many(1), { headers }), response(many(2)), noRules)
  t.same(both.kinds, ['headers', 'body'])
  t.equal(both.diff.length, MAX_DIFF_ENTRIES)
  t.ok(both.diff.every((e) => e.path.startsWith('headers.')))
  t.equal(both.diff[0]?.path, 'headers.x-h00')
})

t.test('JSON null bodies are equal, and null differs from an empty object', async (t) => {
  const nullBody = response('null')
  t.equal(nullBody.body.hasJson, true)
  t.equal(nullBody.body.json, null)
  t.same(compareResponses(nullBody, response('null'), noRules).kinds, [])
  t.same(compareResponses(nullBody, response('{}'), noRules).diff, [{ path: '$', primary: 'null', shadow: '{}' }])
})

t.test('a JSON body over 256 KiB is compared by digest, so ignore rules do not apply to it', async (t) => {
  const big = (stamp: number): unknown => ({ timestamp: stamp, pad: 'x'.repeat(JSON_COMPARE_MAX_BYTES) })
  const primary = response(big(1))
  t.equal(primary.body.hasJson, false)
  t.ok(primary.body.bytes > JSON_COMPARE_MAX_BYTES)
  const result = compareResponses(primary, response(big(2)), rules(['timestamp']))
  t.same(result.kinds, ['body'])
  t.equal(result.diff.length, 1)
  t.equal(result.diff[0]?.path, 'body')
  t.match(result.diff[0]?.primary, /^sha256:[0-9a-f]{12} \(\d+ bytes\)$/)
  t.same(compareResponses(primary, response(big(1)), noRules).kinds, [], 'the same bytes match')
})

t.test('a body exactly at the cap is still compared field by field', async (t) => {
  const head = '{"a":"'
  const text = head + 'x'.repeat(JSON_COMPARE_MAX_BYTES - head.length - 2) + '"}'
  t.equal(Buffer.byteLength(text), JSON_COMPARE_MAX_BYTES)
  t.equal(capture(text).hasJson, true)
})

t.test('non-JSON bodies are compared by digest and byte count', async (t) => {
  const text = 'text/html; charset=utf-8'
  const same = compareResponses(response('<p>hi</p>', { contentType: text }), response('<p>hi</p>', { contentType: text }), noRules)
  t.same(same.kinds, [])
  const primary = response('<p>hi</p>', { contentType: text })
  t.equal(primary.body.hasJson, false)
  const result = compareResponses(primary, response('<p>ho!</p>', { contentType: text }), noRules)
  t.same(result.kinds, ['body'])
  t.same(result.diff, [{
    path: 'body',
    primary: `sha256:${createHash('sha256').update('<p>hi</p>').digest('hex').slice(0, 12)} (9 bytes)`,
    shadow: `sha256:${createHash('sha256').update('<p>ho!</p>').digest('hex').slice(0, 12)} (10 bytes)`,
  }])
})

t.test('gzip-encoded JSON is compared by digest; identity encoding and +json types are parsed', async (t) => {
  const gz = (value: unknown): Buffer => gzipSync(JSON.stringify(value))
  const primary = response(gz({ a: 1, t: 1 }), { headers: { 'content-encoding': 'gzip' } })
  t.equal(primary.body.hasJson, false)
  const result = compareResponses(primary, response(gz({ a: 1, t: 2 }), { headers: { 'content-encoding': 'gzip' } }), rules(['t']))
  t.same(result.kinds, ['body'])
  t.equal(result.diff[0]?.path, 'body')

  t.equal(capture('{"a":1}', 'application/json', 'identity').hasJson, true)
  t.equal(capture('{"a":1}', 'application/problem+json').hasJson, true)
  t.equal(capture('{"a":1}', 'Application/JSON;charset=UTF-8').hasJson, true)
  t.equal(capture('{"a":1}', 'text/plain').hasJson, false)
  const untyped = new BodyCapture(undefined, undefined)
  untyped.write(Buffer.from('{"a":1}'))
  t.equal(untyped.end().hasJson, false, 'no content-type')
  t.equal(capture('{"a":1}', '+json').hasJson, false)
})

t.test('invalid JSON, an empty body or bytes that are not UTF-8, under a JSON type, are compared by digest', async (t) => {
  const invalid = capture('{"a":1')
  t.equal(invalid.hasJson, false)
  t.equal(invalid.json, undefined)
  t.equal(capture('').hasJson, false)
  t.equal(capture(Buffer.from([0x22, 0xff, 0x22])).hasJson, false)
  const result = compareResponses(response('{"a":1'), response('{"a":2'), noRules)
  t.same(result.kinds, ['body'])
  t.equal(result.diff[0]?.path, 'body')
})

t.test('BodyCapture fed in many small chunks gives the hash of the whole and parses the whole', async (t) => {
  const whole = Buffer.from(JSON.stringify({ items: Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `n${i}` })) }))
  const c = new BodyCapture(JSON_TYPE, undefined)
  for (let i = 0; i < whole.length; i += 7) c.write(whole.subarray(i, i + 7))
  const body = c.end()
  t.equal(body.sha256, createHash('sha256').update(whole).digest('hex'))
  t.equal(body.bytes, whole.length)
  t.equal(body.hasJson, true)
  t.same(body.json, JSON.parse(whole.toString()))
  t.equal(c.end(), body, 'ending again returns the same result')
})

t.test('BodyCapture lets its chunks go once past the cap but keeps hashing', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  const c = new BodyCapture(JSON_TYPE, undefined)
  const hash = createHash('sha256')
  for (let i = 0; i < 6; i++) {
    c.write(chunk)
    hash.update(chunk)
  }
  const body = c.end()
  t.equal(body.bytes, 6 * chunk.length)
  t.equal(body.sha256, hash.digest('hex'))
  t.equal(body.hasJson, false)
})

t.test('JSON nested 10 000 levels deep is compared without overflowing the stack', async (t) => {
  const deep = (leaf: string): string => '['.repeat(10_000) + leaf + ']'.repeat(10_000)
  const deepObject = (leaf: string): string => '{"a":'.repeat(10_000) + leaf + '}'.repeat(10_000)
  const primary = response(deep('1'))
  t.equal(primary.body.hasJson, true)
  t.same(compareResponses(primary, response(deep('1 ')), noRules).kinds, [], 'equal values (different bytes) match')
  const arrays = compareResponses(primary, response(deep('2')), noRules)
  t.same(arrays.kinds, ['body'])
  t.equal(arrays.diff.length, 1)
  t.equal(arrays.diff[0]?.path, '$' + '[0]'.repeat(64))
  t.ok((arrays.diff[0]?.primary.length ?? 0) <= 120)
  const objects = compareResponses(response(deepObject('1')), response(deepObject('2')), noRules)
  t.same(objects.kinds, ['body'])
  t.equal(objects.diff[0]?.path, '$' + '.a'.repeat(64))
})

t.test('parseJsonPath reads the supported forms', async (t) => {
  t.same(parseJsonPath('$.a.b'), { ok: true, segments: [{ kind: 'key', key: 'a' }, { kind: 'key', key: 'b' }] })
  t.same(parseJsonPath('a[*].id'), { ok: true, segments: [{ kind: 'key', key: 'a' }, { kind: 'any' }, { kind: 'key', key: 'id' }] })
  t.same(parseJsonPath('["a.b"].c'), { ok: true, segments: [{ kind: 'key', key: 'a.b' }, { kind: 'key', key: 'c' }] })
  t.same(parseJsonPath('items[0]'), { ok: true, segments: [{ kind: 'key', key: 'items' }, { kind: 'index', index: 0 }] })
})

t.test('parseJsonPath refuses the whole body and malformed paths', async (t) => {
  for (const text of ['$', '', 'a..b', 'a.', 'a[x]', 'a b', 'a[0', '.a']) {
    const parsed = parseJsonPath(text)
    t.equal(parsed.ok, false, JSON.stringify(text))
    if (!parsed.ok) t.type(parsed.reason, 'string')
  }
})
