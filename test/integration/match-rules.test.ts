// Match rules through real sockets: a header, cookie or query rule sends matching requests to its
// version before the weights (reason `rule`), the others follow the weights; bad rules, and
// regular expressions that could backtrack, are refused at validation.

import t from 'tap'
import { configDoc, startProxy } from '../helpers/proxy.ts'
import { send } from '../helpers/http.ts'
import { parsePromText } from '../helpers/prom-text.ts'
import { startUpstreams } from '../helpers/upstream.ts'
import { buildConfig } from '../../src/config/load.ts'
import { regexProblem } from '../../src/linear-regexp.ts'
import { queryValue } from '../../src/routing/match-rules.ts'

t.test('x-beta: yes reaches canary at weight 0, other requests follow the weights; cookie and query rules; counted as reason rule', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green')
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: stable?.url, canary: canary?.url, green: green?.url },
    weights: { stable: 100 },
    rules: [
      { match: { header: { name: 'X-Beta', exact: 'yes' } }, version: 'canary' },
      { match: { cookie: { name: 'beta', exact: '1' } }, version: 'canary' },
      { match: { query: { name: 'preview', present: true } }, version: 'green' },
      { match: { header: { name: 'user-agent', regex: '^Mozilla/5\\.0 \\(QA[0-9]+\\)' }, query: { name: 'lang', prefix: 'de' } }, version: 'green' },
    ],
  }]))
  t.teardown(() => proxy.close())
  const versionOf = async (path: string, headers: Record<string, string> = {}): Promise<string> => String((await send(proxy.url + path, { headers }).then((r) => r.headers['x-weir-version'])))
  t.equal(await versionOf('/', { 'x-beta': 'yes' }), 'canary', 'the header rule')
  t.equal(await versionOf('/', { 'x-beta': 'no' }), 'stable', 'another value follows the weights')
  t.equal(await versionOf('/', { 'x-beta': 'YES' }), 'stable', 'exact is exact')
  t.equal(await versionOf('/', { cookie: 'a=b; beta=1' }), 'canary', 'the cookie rule')
  t.equal(await versionOf('/items?preview'), 'green', 'the query rule (present)')
  t.equal(await versionOf('/items?x=1&preview=0'), 'green')
  t.equal(await versionOf('/items?previewed=1'), 'stable', 'a longer name is another parameter')
  t.equal(await versionOf('/?lang=de-CH', { 'user-agent': 'Mozilla/5.0 (QA7) test' }), 'green', 'all conditions of a rule hold')
  t.equal(await versionOf('/?lang=fr', { 'user-agent': 'Mozilla/5.0 (QA7) test' }), 'stable', 'one does not: the rule does not match')
  t.equal(await versionOf('/'), 'stable')
  // A rule comes before the user id's bucket.
  t.equal(await versionOf('/', { 'x-beta': 'yes', 'x-user-id': 'alice' }), 'canary')
  const metrics = parsePromText((await send(proxy.adminUrl + '/metrics')).body)
  const rule = metrics.select('weir_routing_decisions_total', { route: 'shop', reason: 'rule' })
  const count = (version: string): number => rule.find((s) => s.labels.version === version)?.value ?? -1
  t.same([count('canary'), count('green'), count('stable')], [3, 3, 0], 'rule decisions are counted with reason rule')
})

t.test('first match wins: a request that matches two rules goes to the first rule\'s version, whichever it is', async (t) => {
  const [stable, canary, green] = await startUpstreams(t, 'stable', 'canary', 'green')
  const upstreams = { stable: stable?.url, canary: canary?.url, green: green?.url }
  const header = { match: { header: { name: 'x-beta', exact: 'yes' } } }
  const cookie = { match: { cookie: { name: 'beta', exact: '1' } } }
  const proxy = await startProxy(configDoc([
    { name: 'header-first', match: { pathPrefix: '/a' }, upstreams, weights: { stable: 100 }, rules: [{ ...header, version: 'canary' }, { ...cookie, version: 'green' }] },
    { name: 'cookie-first', match: { pathPrefix: '/b' }, upstreams, weights: { stable: 100 }, rules: [{ ...cookie, version: 'green' }, { ...header, version: 'canary' }] },
  ]))
  t.teardown(() => proxy.close())
  const versionOf = async (path: string, headers: Record<string, string>): Promise<string> => String((await send(proxy.url + path, { headers }).then((r) => r.headers['x-weir-version'])))
  const both = { 'x-beta': 'yes', cookie: 'beta=1' }
  t.equal(await versionOf('/a', both), 'canary', 'the header rule comes first: canary')
  t.equal(await versionOf('/b', both), 'green', 'the same request, the cookie rule first: green')
  t.equal(await versionOf('/a', { cookie: 'beta=1' }), 'green', 'a request matching only the second rule gets its version')
  t.equal(await versionOf('/b', { 'x-beta': 'yes' }), 'canary')
})

t.test('rules are checked: a version without an upstream, no condition, two tests in one, a pathological or non-linear regex', async (t) => {
  const route = (rules: unknown[]): unknown => ({ routes: [{ name: 'a', upstreams: { stable: 'http://127.0.0.1:1' }, rules }] })
  const problems = (rules: unknown[]): string[] => {
    const r = buildConfig(route(rules))
    return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.reason}`)
  }
  t.match(problems([{ match: { header: { name: 'x-beta', exact: 'yes' } }, version: 'canary' }]), ['routes[0].rules[0].version: version canary has no upstream'])
  t.match(problems([{ match: {}, version: 'stable' }]), ['routes[0].rules[0].match: must have a header, cookie or query condition'])
  t.match(problems([{ match: { header: { name: 'x-beta', exact: 'yes', prefix: 'y' } }, version: 'stable' }]), ['routes[0].rules[0].match.header: must have exactly one of exact, prefix, regex or present'])
  t.match(problems([{ match: { header: { name: 'x-beta', regex: '^(a+)+$' } }, version: 'stable' }]), [/^routes\[0\]\.rules\[0\]\.match\.header\.regex: can backtrack exponentially/])
  t.match(problems([{ match: { header: { name: 'x-beta', regex: '(x|xx)*y' } }, version: 'stable' }]), [/can backtrack exponentially/])
  t.match(problems([{ match: { header: { name: 'x-beta', regex: '(a)\\1' } }, version: 'stable' }]), [/cannot match in linear time/])
  t.match(problems([{ match: { header: { name: 'x-beta', regex: '(' } }, version: 'stable' }]), [/is not a valid regular expression/])
  t.same(problems([{ match: { header: { name: 'x-beta', regex: '^(beta|qa)-[0-9]{1,4}$' } }, version: 'stable' }]), [], 'an ordinary pattern passes')
  t.equal(regexProblem('(ab)+c'), null, 'a repeated group without a repetition inside is fine')
  t.match(regexProblem('(a?)+'), /can backtrack exponentially/, 'a repeated group with an optional repetition inside is refused too')
  // The `?` of a group's prefix is not a quantifier: these groups hold no repetition.
  for (const pattern of ['(?:ab)+c', '(?<n>ab)+c', '(?<=a)b+', '(?<!a)b+', '^(?:beta|qa)-(?<n>[0-9]+)$']) {
    t.equal(regexProblem(pattern), null, `${pattern} is accepted like (ab)+c`)
  }
  t.same(problems([{ match: { header: { name: 'x-beta', regex: '^(?:ab)+c$' } }, version: 'stable' }]), [], 'a non-capturing repeated group passes validation')
  // Whatever the group's prefix, a repeated group that repeats or alternates is still refused.
  for (const pattern of ['(a+)+', '(?:a+)+$', '(?<n>a+)+', '(a|aa)+', '(?:a|aa)*', '((?:ab)+)+', '(?:a+?)+']) {
    t.match(regexProblem(pattern), /^can backtrack exponentially/, `${pattern} is refused`)
  }
  // What the linear-time engine refuses, named for what it is.
  t.match(regexProblem('x{1000000}'), /^cannot match in linear time: it uses a bounded repetition too large for the linear-time engine \(the counts of x\{n\} and x\{n,m\} may be at most 16/)
  t.notMatch(regexProblem('x{1000000}'), /backreference|lookahead|lookbehind/, 'a large count is not called a backreference or lookaround')
  t.match(regexProblem('[a-z]{1,64}'), /bounded repetition too large/)
  t.match(regexProblem('(?:x{4}){5}'), /bounded repetition too large/, 'nested counts multiply')
  t.equal(regexProblem('x{16}'), null, 'the largest count the engine takes')
  t.match(regexProblem('(?=a)b'), /^cannot match in linear time: it uses lookahead/)
  t.match(regexProblem('(?!a)b'), /^cannot match in linear time: it uses lookahead/)
  t.match(regexProblem('(?<n>a)\\k<n>'), /^cannot match in linear time: it uses a backreference/)
  t.match(regexProblem('(a)\\1'), /^cannot match in linear time: it uses a backreference/)
  t.notMatch(regexProblem('(a)\\1'), /bounded repetition/)
})

t.test('a regex rule answers in linear time on a long hostile header value', async (t) => {
  const [stable, canary] = await startUpstreams(t, 'stable', 'canary')
  const proxy = await startProxy(configDoc([{
    name: 'shop',
    upstreams: { stable: stable?.url, canary: canary?.url },
    rules: [{ match: { header: { name: 'x-q', regex: '^[ab]*c.*d.*e.*f$' } }, version: 'canary' }],
  }]))
  t.teardown(() => proxy.close())
  // A backtracking engine takes seconds on this value (about 2 s at 3 000 characters, cubic in
  // its length); the linear-time engine, milliseconds.
  const began = performance.now()
  const reply = await send(proxy.url + '/', { headers: { 'x-q': 'c' + 'de'.repeat(6000) } })
  t.equal(reply.headers['x-weir-version'], 'stable', 'no match')
  t.ok(performance.now() - began < 1000, `answered in ${Math.round(performance.now() - began)} ms`)
})

t.test('queryValue decodes names and values and stops at the fragment', async (t) => {
  t.equal(queryValue('/x?a=1&b%20c=d%2Fe#f=g', 'b c'), 'd/e')
  t.equal(queryValue('/x?a=1#b=2', 'b'), undefined)
  t.equal(queryValue('/x', 'a'), undefined)
  t.equal(queryValue('/x?a=%E0%A4%A', 'a'), '%E0%A4%A', 'a malformed escape is kept as it is')
})
