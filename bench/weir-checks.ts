// What bench/run.ts checks of weir before measuring it: the user-id split matches the weights,
// weir honours its own bucket cookie, and an anonymous client gets a new cookie on every answer
// (what makes `weir-anon` weir's most expensive request).

import { makeUserIds } from './load.ts'

async function get (url: string, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(url, { headers })
  await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`weir answered ${res.status} to GET ${url} ${JSON.stringify(headers)}`)
  return res
}

/** Sends `count` requests with distinct user ids, 20 at a time; returns the share answered by canary. */
export async function canaryShare (url: string, count: number): Promise<number> {
  const ids = makeUserIds(count)
  let canary = 0
  for (let i = 0; i < ids.length; i += 20) {
    const answers = await Promise.all(ids.slice(i, i + 20).map(async (id) => (await get(url, { 'x-user-id': id })).headers.get('x-weir-version')))
    canary += answers.filter((v) => v === 'canary').length
  }
  return canary / count
}

/** A valid bucket cookie (`weir_b=<bucket>.<mac>`) whose bucket routes to stable. */
export async function stableBucketCookie (url: string): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const res = await get(url)
    const setCookie = res.headers.get('set-cookie')
    if (setCookie === null) throw new Error('weir sent no Set-Cookie to a request without user id or cookie')
    if (res.headers.get('x-weir-version') !== 'stable') continue
    const cookie = setCookie.split(';')[0] as string
    // The cookie must now be honoured: same version, no new Set-Cookie.
    const again = await get(url, { cookie })
    if (again.headers.get('set-cookie') !== null || again.headers.get('x-weir-version') !== 'stable') {
      throw new Error(`weir did not honour its own cookie ${cookie}`)
    }
    return cookie
  }
  throw new Error('no stable bucket cookie in 100 tries')
}

/** Sends `count` anonymous requests; every answer must carry a new bucket cookie. Returns how many buckets they spread over. */
export async function anonymousCookies (url: string, count: number): Promise<number> {
  const cookies = new Set<string>()
  for (let i = 0; i < count; i++) {
    const setCookie = (await get(url)).headers.get('set-cookie')
    if (setCookie === null) throw new Error('weir sent no Set-Cookie to an anonymous client')
    cookies.add(setCookie.split(';')[0] as string)
  }
  return cookies.size
}
