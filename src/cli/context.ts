// What every admin command starts from: the admin client (from --admin/$WEIR_ADMIN_URL and
// --token/$WEIR_ADMIN_TOKEN), the output format (-o json|table) and the terminal's style.

import { createAdminClient, type AdminClient } from './admin-client.ts'
import { buildStyle, wantsColour, type Style } from './render.ts'

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9901'

/** The program's global options, as commander parses them. */
export interface GlobalOptions {
  admin?: string
  token?: string
  output?: 'json' | 'table'
}

export interface CommandContext {
  readonly client: AdminClient
  /** `-o json`: print the API's JSON, nothing else, on stdout. */
  readonly json: boolean
  readonly style: Style
  /** stdout is a terminal (redrawing in place is fine). */
  readonly tty: boolean
  print (text: string): void
  printJson (value: unknown): void
}

const nonEmpty = (value: string | undefined): string | undefined => value === undefined || value === '' ? undefined : value

export function commandContext (options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CommandContext {
  const client = createAdminClient({
    url: nonEmpty(options.admin) ?? nonEmpty(env.WEIR_ADMIN_URL) ?? DEFAULT_ADMIN_URL,
    token: nonEmpty(options.token) ?? nonEmpty(env.WEIR_ADMIN_TOKEN),
  })
  return {
    client,
    json: options.output === 'json',
    style: buildStyle(wantsColour(process.stdout, env)),
    tty: process.stdout.isTTY === true,
    print: (text) => { process.stdout.write(text + '\n') },
    printJson: (value) => { process.stdout.write(JSON.stringify(value, null, 2) + '\n') },
  }
}

/** `/api/v1/routes/<route>`, the name escaped. */
export const routePath = (route: string): string => `/api/v1/routes/${encodeURIComponent(route)}`
