/**
 * Bounded waiting: every wait in the tests has a deadline and fails with a message when it passes.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; returns that value. */
export async function waitFor<T> (check: () => T | Promise<T>, options: { timeoutMs?: number, intervalMs?: number, message?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${options.message ?? 'condition'}${last instanceof Error ? ` (last error: ${last.message})` : ''}`)
    }
    await sleep(options.intervalMs ?? 20)
  }
}

/** Rejects with a clear error when `promise` does not settle within `timeoutMs`. */
export async function withTimeout<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs) })
    ])
  } finally {
    clearTimeout(timer)
  }
}
