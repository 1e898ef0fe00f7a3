// Many requests at a fixed concurrency: a pool of workers taking the next index until all are
// done, and on it sendMany, which sends them over keep-alive connections and keeps the replies.

import { keepAliveAgent, send, type Reply } from './http.ts'

/** Runs `work(0)` … `work(count − 1)`, at most `concurrency` at a time, each index once, in order of start. */
export async function inParallel (count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await work(next++)
  }))
}

export interface RequestSpec {
  method?: string
  /** Appended to the base URL. */
  path: string
  headers?: Record<string, string>
  body?: Buffer | string
}

/** Sends `count` requests made by `make(i)` over `concurrency` keep-alive connections; returns the replies in order. */
export async function sendMany (url: string, count: number, concurrency: number, make: (i: number) => RequestSpec): Promise<Reply[]> {
  const agent = keepAliveAgent(concurrency)
  const replies: Reply[] = new Array(count)
  try {
    await inParallel(count, concurrency, async (i) => {
      const spec = make(i)
      replies[i] = await send(url + spec.path, { method: spec.method ?? 'GET', headers: spec.headers ?? {}, ...(spec.body === undefined ? {} : { body: spec.body }), agent })
    })
  } finally {
    agent.destroy()
  }
  return replies
}
