// The template of a metric check's PromQL query: {{route}}, {{target}} / {{version}} and
// {{interval}}, spaces inside the braces allowed. Shared by the policy rules (unknown names are
// refused) and the controller (which fills them in at each check).

export const QUERY_VARIABLES = ['route', 'target', 'version', 'interval'] as const
export type QueryVariable = typeof QUERY_VARIABLES[number]

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g

/** The placeholders of `query` that name no variable, in order, each once. */
export function unknownQueryVariables (query: string): string[] {
  const unknown = new Set<string>()
  for (const [, name] of query.matchAll(PLACEHOLDER)) {
    if (!(QUERY_VARIABLES as readonly string[]).includes(name as string)) unknown.add(name as string)
  }
  return [...unknown]
}

/** `query` with every placeholder filled in (a valid query has no unknown ones). */
export function renderQuery (query: string, values: Readonly<Record<QueryVariable, string>>): string {
  return query.replace(PLACEHOLDER, (whole, name: string) => values[name as QueryVariable] ?? whole)
}
