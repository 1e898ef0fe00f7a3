// src/ has no import loop, between files or between its folders: in a loop, which module runs
// first depends on who is imported first (one sees the other's bindings uninitialised), and
// folders in one can no longer be read, tested or moved one at a time. Type-only imports
// count: they tie the folders just the same. Imports are read with TypeScript's own parser.

import t from 'tap'
import ts from 'typescript'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { posix } from 'node:path'

type Graph = Map<string, Set<string>>

// ---- reading imports ----------------------------------------------------------------------------

/**
 * The module specifiers a file names with a string literal: import and export … from, import
 * type, import x = require(), import('…') calls and import('…') types. Not comments or strings.
 */
function specifiersOf (fileName: string, text: string): string[] {
  const found: string[] = []
  const literal = (node: ts.Node | undefined): void => {
    if (node !== undefined && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) found.push(node.text)
  }
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      literal(node.moduleSpecifier)
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      literal(node.moduleReference.expression)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      literal(node.arguments[0])
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      literal(node.argument.literal)
    }
    ts.forEachChild(node, visit)
  }
  visit(ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS))
  return found
}

/**
 * The file (relative to the root, '/'-separated) a relative specifier names, or undefined when
 * none exists. Non-relative specifiers (packages, node:…) are not files of the tree: null.
 */
function resolveSpecifier (from: string, specifier: string, isFile: (path: string) => boolean): string | undefined | null {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null
  const base = posix.normalize(posix.join(posix.dirname(from), specifier))
  const candidates = [base, base.replace(/\.js$/, '.ts'), base + '.ts', base + '/index.ts']
  return candidates.find(isFile)
}

/** A file directly in the root is its own node; anything in a folder, however deep, belongs to that top folder. */
function folderOf (file: string): string {
  const slash = file.indexOf('/')
  return slash === -1 ? file : file.slice(0, slash)
}

/** The folder graph of a file graph: an edge for each import from one node to another (none within a folder). */
function folderGraph (files: Graph): { graph: Graph; because: Map<string, string[]> } {
  const graph: Graph = new Map()
  const because = new Map<string, string[]>()
  for (const [from, targets] of files) {
    const a = folderOf(from)
    if (!graph.has(a)) graph.set(a, new Set())
    for (const to of targets) {
      const b = folderOf(to)
      if (a === b) continue
      graph.get(a)?.add(b)
      because.set(`${a} ${b}`, [...(because.get(`${a} ${b}`) ?? []), `${from} → ${to}`])
    }
  }
  return { graph, because }
}

// ---- finding loops --------------------------------------------------------------------------------

/** Tarjan's strongly connected components; recursion is fine at the size of a source tree. */
function stronglyConnected (graph: Graph): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []
  const connect = (v: string): void => {
    index.set(v, index.size)
    low.set(v, index.get(v) as number)
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop() as string
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      components.push(component)
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v)
  return components
}

/** The shortest path from `from` to `to` inside `within` (breadth first), both ends included. */
function shortestPath (graph: Graph, from: string, to: string, within: Set<string>): string[] | undefined {
  const previous = new Map<string, string>([[from, from]])
  const queue = [from]
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head] as string
    if (v === to) {
      const path = [to]
      while (path[0] !== from) path.unshift(previous.get(path[0] as string) as string)
      return path
    }
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (within.has(w) && !previous.has(w)) {
        previous.set(w, v)
        queue.push(w)
      }
    }
  }
  return undefined
}

/**
 * Loops of the graph, each as its nodes from the first back to the first. Every edge inside a
 * strongly connected component lies on at least one loop listed (for each, the shortest loop
 * through it), so each import that has to go to break them all is shown. Sorted, no repeats.
 */
function cyclesOf (graph: Graph): string[][] {
  const cycles = new Map<string, string[]>()
  for (const component of stronglyConnected(graph)) {
    const members = new Set(component)
    for (const u of component) {
      for (const v of graph.get(u) ?? []) {
        if (!members.has(v)) continue
        const back = u === v ? [u] : shortestPath(graph, v, u, members)
        if (back === undefined) continue
        // [u, v, …, u], turned to start at its least node so one loop is listed once.
        const ring = u === v ? [u] : [u, ...back.slice(0, -1)]
        const start = ring.indexOf([...ring].sort()[0] as string)
        const turned = [...ring.slice(start), ...ring.slice(0, start)]
        cycles.set(turned.join(' '), [...turned, turned[0] as string])
      }
    }
  }
  return [...cycles.values()].sort((a, b) => a.length - b.length || (a.join(' ') < b.join(' ') ? -1 : 1))
}

const drawn = (cycle: string[]): string => cycle.join(' → ')

/** A line for each set of nodes that loops tie together: what must come apart. */
function knotsOf (graph: Graph): string[] {
  return stronglyConnected(graph)
    .filter((component) => component.length > 1 || graph.get(component[0] as string)?.has(component[0] as string) === true)
    .map((component) => `  tied together by the loops below: ${component.sort().join(', ')}`)
}

const graphOf = (edges: Record<string, string[]>): Graph => new Map(Object.entries(edges).map(([v, ws]) => [v, new Set(ws)]))

// ---- the detector itself ----------------------------------------------------------------------------

t.test('the loop finder lists every loop of a synthetic graph and nothing for a DAG', async (t) => {
  const looped = graphOf({
    a: ['b'],
    b: ['c'],
    c: ['a', 'd'],
    d: ['e'],
    e: ['d'],
    f: ['f'],
    g: [],
    // Two loops through h: both are listed, as each holds an import the other does not.
    h: ['i', 'j'],
    i: ['h'],
    j: ['h'],
  })
  t.same(cyclesOf(looped).map(drawn), ['f → f', 'd → e → d', 'h → i → h', 'h → j → h', 'a → b → c → a'])
  const dag = graphOf({ a: ['b', 'c'], b: ['d'], c: ['d'], d: ['e'], e: [], f: ['a', 'e'] })
  t.same(cyclesOf(dag), [])
  t.same(cyclesOf(new Map()), [])
})

t.test('imports are read in every form, type-only and dynamic ones included, but not from comments or strings', async (t) => {
  const source = [
    "import a from './a.ts'",
    "import type { B } from '../b.ts'",
    "import { type C, d } from './c.ts'",
    "import './side-effect.ts'",
    "export { e } from './e.ts'",
    "export type { F } from './f.ts'",
    "export * from './g.ts'",
    "export * as h from './h.ts'",
    "import i = require('./i.ts')",
    'const j = await import(`./j.ts`)',
    "type K = typeof import('./k.ts')",
    "void import('./l.ts').then((m) => m)",
    'import {',
    '  many,',
    '  lines,',
    "} from './m.ts'",
    "import fs from 'node:fs'",
    "// import x from './commented.ts'",
    "/* export * from './block-commented.ts' */",
    "const s = \"import y from './in-a-string.ts'\"",
    'const u = `export * from "./in-a-template.ts"`',
    'const dynamic = import(name)',
  ].join('\n')
  t.same(specifiersOf('x.ts', source), [
    './a.ts', '../b.ts', './c.ts', './side-effect.ts', './e.ts', './f.ts', './g.ts', './h.ts', './i.ts',
    './j.ts', './k.ts', './l.ts', './m.ts', 'node:fs',
  ])
})

t.test('specifiers resolve to files of the tree, and files group into top-level folders', async (t) => {
  const files = new Set(['app.ts', 'errors.ts', 'admin/api.ts', 'admin/guard.ts', 'proxy/index.ts', 'proxy/deep/x.ts'])
  const isFile = (path: string): boolean => files.has(path)
  t.equal(resolveSpecifier('admin/api.ts', './guard.ts', isFile), 'admin/guard.ts')
  t.equal(resolveSpecifier('admin/api.ts', '../errors.ts', isFile), 'errors.ts')
  t.equal(resolveSpecifier('admin/api.ts', '../errors.js', isFile), 'errors.ts')
  t.equal(resolveSpecifier('admin/api.ts', '../errors', isFile), 'errors.ts')
  t.equal(resolveSpecifier('app.ts', './proxy', isFile), 'proxy/index.ts')
  t.equal(resolveSpecifier('proxy/deep/x.ts', '../../app.ts', isFile), 'app.ts')
  t.equal(resolveSpecifier('app.ts', './missing.ts', isFile), undefined)
  t.equal(resolveSpecifier('app.ts', 'fastify', isFile), null)
  t.equal(resolveSpecifier('app.ts', 'node:fs', isFile), null)
  t.same(['app.ts', 'admin/api.ts', 'proxy/deep/x.ts'].map(folderOf), ['app.ts', 'admin', 'proxy'])
  const { graph, because } = folderGraph(graphOf({
    'app.ts': ['x/a.ts'], 'x/a.ts': ['x/b.ts'], 'x/b.ts': ['y/deep/c.ts'], 'y/deep/c.ts': ['x/a.ts', 'errors.ts'], 'errors.ts': [],
  }))
  t.same(Object.fromEntries([...graph].map(([v, ws]) => [v, [...ws].sort()])), { 'app.ts': ['x'], x: ['y'], y: ['errors.ts', 'x'], 'errors.ts': [] },
    'an import within a folder is no edge; a file in src/ is its own node')
  t.same(because.get('y x'), ['y/deep/c.ts → x/a.ts'])
  t.same(cyclesOf(graph).map(drawn), ['x → y → x'])
})

// ---- src/ ---------------------------------------------------------------------------------------

const SRC = fileURLToPath(new URL('../../src/', import.meta.url))

function sourceFiles (dir = ''): string[] {
  const out: string[] = []
  for (const name of readdirSync(posix.join(SRC, dir)).sort()) {
    const path = dir === '' ? name : `${dir}/${name}`
    if (statSync(posix.join(SRC, path)).isDirectory()) out.push(...sourceFiles(path))
    else if (name.endsWith('.ts')) out.push(path)
  }
  return out
}

t.test('src/ has no import loop between files, nor between its folders', async (t) => {
  const files = sourceFiles()
  const isFile = (path: string): boolean => existsSync(posix.join(SRC, path)) && statSync(posix.join(SRC, path)).isFile()
  const graph: Graph = new Map()
  const unresolved: string[] = []
  let edges = 0
  for (const file of files) {
    const targets = new Set<string>()
    for (const specifier of specifiersOf(file, readFileSync(posix.join(SRC, file), 'utf8'))) {
      const target = resolveSpecifier(file, specifier, isFile)
      if (target === undefined) unresolved.push(`${file}: ${specifier}`)
      // A package, or a file outside src/ (package.json, say): not a node of this graph.
      else if (target !== null && !target.startsWith('../')) targets.add(target)
    }
    edges += targets.size
    graph.set(file, targets)
  }
  // A graph read wrong would have no loops to find: it must hold every file and their imports.
  t.ok(files.includes('app.ts') && files.length >= 10, `${files.length} files read`)
  t.ok(edges >= files.length - 1, `${edges} imports between them`)
  t.same(unresolved, [], 'every relative import names a file')

  const fileCycles = cyclesOf(graph).map(drawn)
  if (fileCycles.length > 0) t.comment(['Import loops between files of src/:', ...knotsOf(graph), ...fileCycles.map((c) => '  ' + c)].join('\n'))
  t.same(fileCycles, [], 'no loop between files')

  const folders = folderGraph(graph)
  const folderCycles = cyclesOf(folders.graph)
  if (folderCycles.length > 0) {
    const lines = ['Import loops between folders of src/ (each step with the imports that make it):', ...knotsOf(folders.graph)]
    for (const cycle of folderCycles) {
      lines.push('  ' + drawn(cycle))
      for (let i = 0; i + 1 < cycle.length; i++) {
        const step = `${cycle[i]} ${cycle[i + 1]}`
        lines.push(`    ${cycle[i]} → ${cycle[i + 1]}: ${(folders.because.get(step) ?? []).join(', ')}`)
      }
    }
    t.comment(lines.join('\n'))
  }
  t.same(folderCycles.map(drawn), [], 'no loop between folders (a file directly in src/ counts as a folder of its own)')
})
