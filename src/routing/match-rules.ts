// Match rules (config `routes[].rules`, docs/routing.md): before the weights, the first rule whose
// every condition holds sends the request to its version (decision reason `rule`). A condition
// reads one header, cookie or query parameter and tests it exactly, by prefix, by a regular
// expression, or for presence. Rules are plain data in the snapshot; compiled here per table.
// Regular expressions run in linear time (linear-regexp.ts).

import type { IncomingHttpHeaders } from 'node:http'
import type { MatchRule, RuleCondition } from '../config/model.ts'
import type { Version } from '../vocabulary.ts'
import { readCookie } from './bucket-cookie.ts'
import { linearRegExp } from '../linear-regexp.ts'

export interface CompiledRule {
  readonly version: Version
  /** Whether every condition holds for this request. */
  readonly matches: (headers: IncomingHttpHeaders, url: string) => boolean
}

export function compileRules (rules: readonly MatchRule[]): readonly CompiledRule[] {
  return rules.map((rule) => {
    const tests = rule.conditions.map(compileCondition)
    return {
      version: rule.version,
      matches: (headers, url) => {
        for (let i = 0; i < tests.length; i++) if (!(tests[i] as ConditionTest)(headers, url)) return false
        return true
      },
    }
  })
}

type ConditionTest = (headers: IncomingHttpHeaders, url: string) => boolean

function compileCondition (c: RuleCondition): ConditionTest {
  const test = valueTest(c)
  switch (c.source) {
    case 'header': {
      const name = c.name
      return (headers) => {
        const value = headers[name]
        return test(Array.isArray(value) ? value.join(', ') : value)
      }
    }
    case 'cookie': {
      const nameEq = c.name + '='
      return (headers) => test(readCookie(headers.cookie, nameEq))
    }
    case 'query': {
      const name = c.name
      return (_headers, url) => test(queryValue(url, name))
    }
  }
}

function valueTest (c: RuleCondition): (value: string | undefined) => boolean {
  switch (c.op) {
    case 'present': return (value) => value !== undefined
    case 'exact': {
      const expected = c.value as string
      return (value) => value === expected
    }
    case 'prefix': {
      const prefix = c.value as string
      return (value) => value !== undefined && value.startsWith(prefix)
    }
    case 'regex': {
      const re = linearRegExp(c.value as string)
      return (value) => value !== undefined && re.test(value)
    }
  }
}

/** The first value of query parameter `name` (percent-decoded), or undefined. */
export function queryValue (url: string, name: string): string | undefined {
  const q = url.indexOf('?')
  if (q === -1) return undefined
  const end = url.indexOf('#', q)
  const query = url.slice(q + 1, end === -1 ? url.length : end)
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=')
    const key = decode(eq === -1 ? pair : pair.slice(0, eq))
    if (key === name) return eq === -1 ? '' : decode(pair.slice(eq + 1))
  }
  return undefined
}

function decode (text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '))
  } catch {
    return text
  }
}
