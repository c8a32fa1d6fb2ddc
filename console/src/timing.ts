/**
 * Rate limits for work triggered by bursts of live events: a throttle (at most once per
 * interval, the last call kept) and a debounce (once, after a quiet interval).
 */

/** A rate-limited function and the way to drop its pending call. */
export interface Limited {
  (): void
  /** Drops a pending call (when its component goes away). */
  cancel (): void
}

/**
 * Runs `fn` at once, then at most once per `ms`: calls in between collapse into one at the end
 * of the interval.
 */
export function throttle (fn: () => void, ms: number): Limited {
  let last = -Infinity
  let timer: ReturnType<typeof setTimeout> | undefined
  const run = (): void => {
    timer = undefined
    last = Date.now()
    fn()
  }
  const limited = (): void => {
    if (timer !== undefined) return
    const wait = last + ms - Date.now()
    if (wait <= 0) run()
    else timer = setTimeout(run, wait)
  }
  limited.cancel = (): void => {
    clearTimeout(timer)
    timer = undefined
  }
  return limited
}

/** Runs `fn` once calls have stopped for `ms`. */
export function debounce (fn: () => void, ms: number): Limited {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limited = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      fn()
    }, ms)
  }
  limited.cancel = (): void => {
    clearTimeout(timer)
    timer = undefined
  }
  return limited
}
