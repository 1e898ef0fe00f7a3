// Compares a shadow's response with the one the client got: status, then headers, then body
// (field by field when both bodies are JSON, by digest otherwise). Pure: the proxy captures
// the two responses, this module judges them and writes a short diff for the sample.

import { createHash, type Hash } from 'node:crypto'
import { isPlainObject } from '../is-plain-object.ts'
import type { MismatchKind } from '../vocabulary.ts'
import { parseJsonPath, type PathSegment } from './json-path.ts'

/** Largest body kept in memory for a field-level JSON comparison (per side). */
export const JSON_COMPARE_MAX_BYTES = 256 * 1024

/** A comparison reports at most this many differences; the kinds are still complete. */
export const MAX_DIFF_ENTRIES = 10

/** Response headers never compared: they differ between any two servers or any two responses. */
export const VOLATILE_HEADERS: ReadonlySet<string> = new Set([
  'date', 'age', 'server', 'via', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'te', 'trailer', 'upgrade', 'content-length', 'etag', 'last-modified', 'expires', 'set-cookie',
  'x-request-id', 'x-weir-version', 'x-weir-shadow',
])

export interface CompareRules {
  /** Lower-case header names left out, VOLATILE_HEADERS included. */
  readonly ignoreHeaders: ReadonlySet<string>
  readonly ignorePaths: readonly (readonly PathSegment[])[]
}

/** From a route's normalized settings (paths are already known to parse; throws if one does not). */
export function compileCompareRules (shadow: { ignoreHeaders: readonly string[]; ignoreJson: readonly string[] }): CompareRules {
  const ignoreHeaders = new Set(VOLATILE_HEADERS)
  for (const name of shadow.ignoreHeaders) ignoreHeaders.add(name.toLowerCase())
  const ignorePaths = shadow.ignoreJson.map((text) => {
    const parsed = parseJsonPath(text)
    if (!parsed.ok) throw new Error(`shadow ignore path "${text}" ${parsed.reason}`)
    return parsed.segments
  })
  return { ignoreHeaders, ignorePaths }
}

export interface CapturedBody {
  readonly bytes: number
  /** Hex SHA-256 of the raw bytes as received (still encoded, if they were). */
  readonly sha256: string
  /** The parsed body, when it was JSON within the cap and valid; undefined otherwise. */
  readonly json: unknown
  /** Whether `json` holds the body (JSON `null` is a valid body, so `json` alone cannot tell). */
  readonly hasJson: boolean
}

export interface CapturedResponse {
  readonly status: number
  /** Lower-case names, as node and undici give them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly body: CapturedBody
}

export interface DiffEntry { readonly path: string; readonly primary: string; readonly shadow: string }

export interface Comparison {
  /** Empty when the responses match. */
  readonly kinds: readonly MismatchKind[]
  /** At most MAX_DIFF_ENTRIES entries: headers by name, then body fields in document order. */
  readonly diff: readonly DiffEntry[]
}

// Fatal, so bytes that are not UTF-8 fall back to the digest instead of comparing as U+FFFD.
const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** True for `application/json` and any `type/subtype+json`, parameters aside. */
function isJsonMediaType (contentType: string | undefined): boolean {
  if (contentType === undefined) return false
  const semi = contentType.indexOf(';')
  const media = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  return media === 'application/json' || (media.endsWith('+json') && media.indexOf('/') > 0)
}

function isIdentityEncoding (contentEncoding: string | undefined): boolean {
  if (contentEncoding === undefined) return true
  const encoding = contentEncoding.trim().toLowerCase()
  return encoding === '' || encoding === 'identity'
}

/**
 * Captures one response body as it streams, within a fixed memory bound: always a running
 * SHA-256 of the raw bytes and their count; and, when the response is unencoded JSON, the
 * chunks themselves while their total stays within JSON_COMPARE_MAX_BYTES. Past the cap the
 * chunks are let go and only hashing continues. Chunks are kept by reference, not copied, so
 * the caller must not reuse a buffer it has written.
 */
export class BodyCapture {
  readonly #hash: Hash = createHash('sha256')
  #bytes = 0
  /** Null when the body is not JSON, or has outgrown the cap. */
  #chunks: Buffer[] | null
  #result: CapturedBody | undefined

  constructor (contentType: string | undefined, contentEncoding: string | undefined) {
    this.#chunks = isJsonMediaType(contentType) && isIdentityEncoding(contentEncoding) ? [] : null
  }

  write (chunk: Buffer): void {
    this.#hash.update(chunk)
    this.#bytes += chunk.length
    if (this.#chunks === null) return
    if (this.#bytes > JSON_COMPARE_MAX_BYTES) this.#chunks = null
    else this.#chunks.push(chunk)
  }

  /** Finishes the capture, parsing the kept bytes when they are complete, valid JSON. Later calls return the same result. */
  end (): CapturedBody {
    if (this.#result !== undefined) return this.#result
    const sha256 = this.#hash.digest('hex')
    let json: unknown
    let hasJson = false
    const chunks = this.#chunks
    if (chunks !== null && this.#bytes > 0) {
      // One concat for the whole body, here rather than per write; none at all for one chunk.
      const whole = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, this.#bytes)
      try {
        json = JSON.parse(UTF8.decode(whole))
        hasJson = true
      } catch {
        json = undefined
      }
    }
    this.#chunks = null
    this.#result = { bytes: this.#bytes, sha256, json, hasJson }
    return this.#result
  }
}

/**
 * Judges the shadow's response against the primary's. A different status is the only thing
 * reported when there is one: it explains whatever else differs. Ignore paths apply only when
 * both bodies are JSON within JSON_COMPARE_MAX_BYTES; any other body (too large, encoded, not
 * JSON, invalid JSON) is compared whole by its digest, so an ignored field cannot hide there.
 */
export function compareResponses (primary: CapturedResponse, shadow: CapturedResponse, rules: CompareRules): Comparison {
  if (primary.status !== shadow.status) {
    return { kinds: ['status'], diff: [{ path: 'status', primary: String(primary.status), shadow: String(shadow.status) }] }
  }
  const diff: DiffEntry[] = []
  const kinds: MismatchKind[] = []
  if (compareHeaders(primary.headers, shadow.headers, rules.ignoreHeaders, diff)) kinds.push('headers')
  if (compareBodies(primary.body, shadow.body, rules.ignorePaths, diff)) kinds.push('body')
  return { kinds, diff }
}

// ---- headers

const ABSENT = '(absent)'

/** Compared header values by lower-case name; ignored names and absent values are left out. */
function comparableHeaders (headers: CapturedResponse['headers'], ignore: ReadonlySet<string>): Map<string, string> {
  const values = new Map<string, string>()
  for (const [rawName, value] of Object.entries(headers)) {
    if (value === undefined) continue
    const name = rawName.toLowerCase()
    if (VOLATILE_HEADERS.has(name) || ignore.has(name)) continue
    const text = typeof value === 'string' ? value : value.join(', ')
    const before = values.get(name)
    values.set(name, before === undefined ? text : `${before}, ${text}`)
  }
  return values
}

function compareHeaders (
  primary: CapturedResponse['headers'], shadow: CapturedResponse['headers'], ignore: ReadonlySet<string>, diff: DiffEntry[]
): boolean {
  const p = comparableHeaders(primary, ignore)
  const s = comparableHeaders(shadow, ignore)
  const names = new Set([...p.keys(), ...s.keys()])
  let differs = false
  for (const name of [...names].sort()) {
    const pv = p.get(name)
    const sv = s.get(name)
    if (pv === sv) continue
    differs = true
    if (diff.length < MAX_DIFF_ENTRIES) {
      diff.push({ path: `headers.${name}`, primary: truncate(pv ?? ABSENT), shadow: truncate(sv ?? ABSENT) })
    }
  }
  return differs
}

// ---- bodies

function compareBodies (primary: CapturedBody, shadow: CapturedBody, ignorePaths: CompareRules['ignorePaths'], diff: DiffEntry[]): boolean {
  // Identical bytes are identical bodies whatever the rules say: skip the walk.
  if (primary.sha256 === shadow.sha256 && primary.bytes === shadow.bytes) return false
  if (primary.hasJson && shadow.hasJson) {
    const walk: JsonWalk = { diff, trail: [], differs: false }
    compareJson(primary.json, shadow.json, ignorePaths.map((path) => ({ path, at: 0 })), 0, walk)
    return walk.differs
  }
  if (diff.length < MAX_DIFF_ENTRIES) diff.push({ path: 'body', primary: describeDigest(primary), shadow: describeDigest(shadow) })
  return true
}

function describeDigest (body: CapturedBody): string {
  return `sha256:${body.sha256.slice(0, 12)} (${body.bytes} bytes)`
}

/**
 * Subtrees deeper than this are compared as one value, so that the walk's recursion is
 * bounded whatever the input; ignore paths reaching deeper than this do not apply.
 */
const MAX_JSON_DEPTH = 64

/** How far one ignore path has matched on the way down: `path[at]` is the next segment to match. */
interface Cursor { readonly path: readonly PathSegment[]; readonly at: number }

const NO_CURSORS: readonly Cursor[] = []

interface JsonWalk {
  readonly diff: DiffEntry[]
  /** Keys and indices from the root to the value being compared; rendered only for a diff entry. */
  readonly trail: Array<string | number>
  differs: boolean
}

/**
 * The cursors that continue into one child (`key` a string for an object member, a number for
 * an array element), or null when an ignore path ends there and the child is left out. Ignored
 * children are skipped on both sides, so no later index shifts.
 */
function descend (cursors: readonly Cursor[], key: string | number): readonly Cursor[] | null {
  if (cursors.length === 0) return NO_CURSORS
  let next: Cursor[] | undefined
  for (const cursor of cursors) {
    const segment = cursor.path[cursor.at] as PathSegment
    const hit = segment.kind === 'any' ||
      (segment.kind === 'key' ? segment.key === key : segment.index === key)
    if (!hit) continue
    if (cursor.at + 1 === cursor.path.length) return null
    next ??= []
    next.push({ path: cursor.path, at: cursor.at + 1 })
  }
  return next ?? NO_CURSORS
}

type JsonObject = Record<string, unknown>

/** Whether the walk may stop: it knows the body differs and has no room for more entries. */
function full (walk: JsonWalk): boolean {
  return walk.differs && walk.diff.length >= MAX_DIFF_ENTRIES
}

function report (walk: JsonWalk, primary: string, shadow: string): void {
  walk.differs = true
  if (walk.diff.length < MAX_DIFF_ENTRIES) walk.diff.push({ path: renderPath(walk.trail), primary, shadow })
}

function compareJson (p: unknown, s: unknown, cursors: readonly Cursor[], depth: number, walk: JsonWalk): void {
  const pArray = Array.isArray(p)
  const sArray = Array.isArray(s)
  const pObject = isPlainObject(p)
  const sObject = isPlainObject(s)
  if (pArray !== sArray || pObject !== sObject) {
    report(walk, renderJson(p, cursors), renderJson(s, cursors))
    return
  }
  if (!pArray && !pObject) {
    // Both scalars: JSON.parse gives 1 and 1.0 the same number, so === is JSON equality.
    if (p !== s) report(walk, renderJson(p, cursors), renderJson(s, cursors))
    return
  }
  if (depth >= MAX_JSON_DEPTH) {
    if (!sameJson(p, s)) report(walk, renderJson(p, cursors), renderJson(s, cursors))
    return
  }
  if (pArray) compareArrays(p, s as unknown[], cursors, depth, walk)
  else compareObjects(p as JsonObject, s as JsonObject, cursors, depth, walk)
}

function compareArrays (p: unknown[], s: unknown[], cursors: readonly Cursor[], depth: number, walk: JsonWalk): void {
  const length = Math.max(p.length, s.length)
  for (let i = 0; i < length && !full(walk); i++) {
    const next = descend(cursors, i)
    if (next === null) continue
    walk.trail.push(i)
    if (i >= p.length) report(walk, ABSENT, renderJson(s[i], next))
    else if (i >= s.length) report(walk, renderJson(p[i], next), ABSENT)
    else compareJson(p[i], s[i], next, depth + 1, walk)
    walk.trail.pop()
  }
}

function compareObjects (p: JsonObject, s: JsonObject, cursors: readonly Cursor[], depth: number, walk: JsonWalk): void {
  for (const key of Object.keys(p)) {
    if (full(walk)) return
    const next = descend(cursors, key)
    if (next === null) continue
    walk.trail.push(key)
    if (Object.hasOwn(s, key)) compareJson(p[key], s[key], next, depth + 1, walk)
    else report(walk, renderJson(p[key], next), ABSENT)
    walk.trail.pop()
  }
  // Keys only the shadow has come after the primary's, in the shadow's order.
  for (const key of Object.keys(s)) {
    if (full(walk)) return
    if (Object.hasOwn(p, key)) continue
    const next = descend(cursors, key)
    if (next === null) continue
    walk.trail.push(key)
    report(walk, ABSENT, renderJson(s[key], next))
    walk.trail.pop()
  }
}

/** Deep JSON equality (key order aside) with an explicit stack, for subtrees past MAX_JSON_DEPTH. */
function sameJson (a: unknown, b: unknown): boolean {
  const stack: unknown[] = [a, b]
  while (stack.length > 0) {
    const y = stack.pop()
    const x = stack.pop()
    if (x === y) continue
    if (Array.isArray(x)) {
      if (!Array.isArray(y) || x.length !== y.length) return false
      for (let i = 0; i < x.length; i++) stack.push(x[i], y[i])
    } else if (isPlainObject(x)) {
      if (!isPlainObject(y)) return false
      const keys = Object.keys(x)
      if (keys.length !== Object.keys(y).length) return false
      for (const key of keys) {
        if (!Object.hasOwn(y, key)) return false
        stack.push(x[key], y[key])
      }
    } else {
      return false
    }
  }
  return true
}

// ---- rendering

/** Longest value shown in a diff entry, the ellipsis included. */
const MAX_SHOWN_CHARS = 120

function truncate (text: string): string {
  if (text.length <= MAX_SHOWN_CHARS) return text
  let end = MAX_SHOWN_CHARS - 1
  // Do not cut a surrogate pair in half.
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return text.slice(0, end) + '…'
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** `$.a.b[2].c`, with keys that are not plain identifiers as `["a.b"]`. */
function renderPath (trail: ReadonlyArray<string | number>): string {
  let path = '$'
  for (const step of trail) {
    if (typeof step === 'number') path += `[${step}]`
    else path += IDENTIFIER.test(step) ? `.${step}` : `[${JSON.stringify(step)}]`
  }
  return path
}

const NO_KEYS: readonly string[] = []

interface RenderFrame {
  readonly array: readonly unknown[] | undefined
  readonly object: JsonObject | undefined
  readonly keys: readonly string[]
  readonly cursors: readonly Cursor[]
  i: number
  written: number
}

/**
 * Compact JSON of a value as it was compared (ignored fields left out), cut at
 * MAX_SHOWN_CHARS. Iterative and stops writing once past the limit, so neither a deep nor a
 * large value costs more than the few characters shown.
 */
function renderJson (value: unknown, cursors: readonly Cursor[]): string {
  let out = ''
  const frames: RenderFrame[] = []
  let pending = true
  let next: unknown = value
  let nextCursors = cursors
  while (out.length <= MAX_SHOWN_CHARS) {
    if (pending) {
      pending = false
      if (Array.isArray(next)) {
        out += '['
        frames.push({ array: next, object: undefined, keys: NO_KEYS, cursors: nextCursors, i: 0, written: 0 })
      } else if (isPlainObject(next)) {
        out += '{'
        frames.push({ array: undefined, object: next, keys: Object.keys(next), cursors: nextCursors, i: 0, written: 0 })
      } else {
        // Only the head of a long string can be shown: escape no more of it than that.
        out += JSON.stringify(typeof next === 'string' ? next.slice(0, MAX_SHOWN_CHARS + 1) : next)
      }
    }
    const frame = frames.at(-1)
    if (frame === undefined) break
    const length = frame.array !== undefined ? frame.array.length : frame.keys.length
    if (frame.i >= length) {
      out += frame.array !== undefined ? ']' : '}'
      frames.pop()
      continue
    }
    const i = frame.i++
    const key = frame.array !== undefined ? i : frame.keys[i] as string
    const childCursors = descend(frame.cursors, key)
    if (childCursors === null) continue
    if (frame.written++ > 0) out += ','
    if (frame.array !== undefined) {
      next = frame.array[i]
    } else {
      out += JSON.stringify(key) + ':'
      next = (frame.object as JsonObject)[key]
    }
    nextCursors = childCursors
    pending = true
  }
  return truncate(out)
}
