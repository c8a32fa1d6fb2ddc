/**
 * Hybrid logical clock (Kulkarni et al. 2014): physical milliseconds plus a logical counter, so
 * that timestamps follow causality even when wall clocks disagree a little.
 */
import { ClockDriftError, MalformedError } from './errors.js'

/** A hybrid logical clock reading. */
export interface Hlc {
  /** Milliseconds since the Unix epoch (physical part). */
  readonly ms: number
  /** Logical counter within one millisecond, 0..65535. */
  readonly c: number
}

export const MAX_COUNTER = 0xffff
/** Entries whose clock is this far ahead of the local wall clock are rejected. */
export const DEFAULT_MAX_DRIFT_MS = 24 * 60 * 60 * 1000
const MAX_MS = 2 ** 48 - 1

/** Orders two readings: negative, zero or positive. */
export function compareHlc (a: Hlc, b: Hlc): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.c - b.c
}

/** Fixed-width (16 hex digits) form whose string order equals clock order. */
export function hlcToString (h: Hlc): string {
  return h.ms.toString(16).padStart(12, '0') + h.c.toString(16).padStart(4, '0')
}

/** Parses {@link hlcToString} output. */
export function hlcFromString (s: string): Hlc {
  if (!/^[0-9a-f]{16}$/.test(s)) throw new MalformedError(`"clock" expected 16 hex digits, got ${JSON.stringify(s.slice(0, 32))}`)
  return { ms: parseInt(s.slice(0, 12), 16), c: parseInt(s.slice(12), 16) }
}

/** Validates an untrusted clock value. */
export function checkHlc (value: unknown): Hlc {
  if (!Array.isArray(value) || value.length !== 2) throw new MalformedError('"clock" expected [ms, counter]')
  const [ms, c] = value as unknown[]
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0 || ms > MAX_MS) throw new MalformedError('"clock" ms out of range')
  if (typeof c !== 'number' || !Number.isSafeInteger(c) || c < 0 || c > MAX_COUNTER) throw new MalformedError('"clock" counter out of range')
  return { ms, c }
}

/** A hybrid logical clock. */
export class HybridClock {
  private ms = 0
  private c = 0

  constructor (private readonly wall: () => number = Date.now, private readonly maxDriftMs = DEFAULT_MAX_DRIFT_MS) {}

  /** A reading for a local event, greater than every reading given or observed before. */
  now (): Hlc {
    const wall = this.wall()
    if (wall > this.ms) {
      this.ms = wall
      this.c = 0
    } else if (this.c < MAX_COUNTER) {
      this.c++
    } else {
      // counter exhausted within one millisecond: borrow the next millisecond
      this.ms++
      this.c = 0
    }
    return { ms: this.ms, c: this.c }
  }

  /**
   * Takes a remote reading into account, so later local readings order after it. Throws
   * {@link ClockDriftError} when the remote clock is more than the allowed drift ahead.
   */
  observe (remote: Hlc): void {
    const wall = this.wall()
    if (remote.ms > wall + this.maxDriftMs) {
      throw new ClockDriftError(`remote clock ${new Date(remote.ms).toISOString()} is more than ${this.maxDriftMs} ms ahead of local time`)
    }
    if (remote.ms > this.ms || (remote.ms === this.ms && remote.c > this.c)) {
      this.ms = remote.ms
      this.c = remote.c
    }
  }

  /** Checks a remote reading against the drift bound without adopting it. */
  checkDrift (remote: Hlc): void {
    if (remote.ms > this.wall() + this.maxDriftMs) {
      throw new ClockDriftError(`remote clock ${new Date(remote.ms).toISOString()} is more than ${this.maxDriftMs} ms ahead of local time`)
    }
  }

  /** The latest reading given or observed. */
  last (): Hlc {
    return { ms: this.ms, c: this.c }
  }
}
