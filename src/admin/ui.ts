// The web dashboard's static files (docs/dashboard.md) on the admin port: ui/*.html|js|css and
// uPlot's two files, read once at start into a fixed table, so a URL only ever names a key of that
// table and never a path on disk. The files hold no data and need no token; the page calls /api/v1.

import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** The dashboard's own files: a flat folder at the package root (src/admin/ and dist/admin/ are both two levels down). */
const UI_DIR = new URL('../../ui/', import.meta.url)

/** uPlot's files as the page asks for them (/ui/vendor/NAME) → the module that holds them. */
const VENDOR: Readonly<Record<string, string>> = {
  'uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
}

/**
 * No inline script or style, nothing from elsewhere, no framing, no forms posting away. uPlot
 * sets element styles through the CSSOM, which `style-src 'self'` allows.
 */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Revalidated on every load (the ETag makes that a 304), so an upgraded weir serves its own page.
  'cache-control': 'no-cache',
}

interface UiFile { readonly body: Buffer; readonly type: string; readonly etag: string }

/** The files by the path the page asks for, relative to /ui/ (`index.html`, `vendor/uPlot.esm.js`). */
export function readUiFiles (): Map<string, UiFile> {
  const files = new Map<string, UiFile>()
  const add = (name: string, path: string | URL): void => {
    const body = readFileSync(path)
    const type = CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)] as string
    files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` })
  }
  if (existsSync(UI_DIR)) {
    for (const name of readdirSync(UI_DIR)) {
      if (/^[a-z0-9-]+\.(?:html|js|css)$/.test(name)) add(name, new URL(name, UI_DIR))
    }
  }
  for (const [name, module] of Object.entries(VENDOR)) {
    let path: string | null = null
    try {
      path = fileURLToPath(import.meta.resolve(module))
    } catch {}
    if (path !== null && existsSync(path)) add(`vendor/${name}`, path)
  }
  return files
}

/** GET /ui, /ui/ and /ui/NAME; anything else under /ui falls through to the admin's 404. */
export async function adminUi (app: FastifyInstance, { logger }: { logger: FastifyBaseLogger }): Promise<void> {
  const files = readUiFiles()
  if (!files.has('index.html') || !files.has('vendor/uPlot.esm.js')) {
    logger.warn('the dashboard\'s files are missing (ui/, or the uplot package): GET /ui answers 404')
    return
  }
  const serve = (name: string) => async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const file = files.get(name) as UiFile
    reply.headers(UI_HEADERS).header('etag', file.etag)
    if (request.headers['if-none-match'] === file.etag) return reply.code(304).send()
    return reply.type(file.type).send(file.body)
  }
  app.get('/ui', serve('index.html'))
  app.get('/ui/', serve('index.html'))
  for (const name of files.keys()) app.get(`/ui/${name}`, serve(name))
}
