/**
 * Collection policies of the file provider: how long documents live after their last write and
 * how many bytes a collection may hold before its least recently used documents are evicted.
 */
import { InvalidOptionError } from './errors.js'

/**
 * A collection's own policy. An omitted value follows the store's default; null means "none",
 * whatever the default.
 */
export interface CollectionPolicy {
  /** Documents expire this many milliseconds after their last write. */
  readonly ttlMs?: number | null
  /**
   * Byte budget of the collection (UTF-8 bytes of each document's JSON and id): a write that
   * goes over it evicts the least recently used documents.
   */
  readonly maxBytes?: number | null
}

/** The policy in force for a collection: null where there is none. */
export interface EffectivePolicy {
  readonly ttlMs: number | null
  readonly maxBytes: number | null
}

/** Store-wide defaults (from the open options). */
export interface PolicyDefaults {
  readonly ttlMs?: number | undefined
  readonly maxBytes?: number | undefined
}

function checkLimit (name: string, v: unknown, nullable: boolean): void {
  if (v === undefined || (nullable && v === null)) return
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidOptionError(`"${name}" expected a positive integer${nullable ? ' or null' : ''}, got ${JSON.stringify(v) ?? String(v)}`)
  }
}

/** Validates a collection policy; returns it without undefined fields. */
export function checkPolicy (policy: unknown): CollectionPolicy {
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) throw new InvalidOptionError('policy expected an object with ttlMs and/or maxBytes')
  const { ttlMs, maxBytes, ...rest } = policy as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new InvalidOptionError(`unknown policy option ${JSON.stringify(unknown[0])} (expected ttlMs, maxBytes)`)
  checkLimit('ttlMs', ttlMs, true)
  checkLimit('maxBytes', maxBytes, true)
  return {
    ...(ttlMs === undefined ? {} : { ttlMs: ttlMs as number | null }),
    ...(maxBytes === undefined ? {} : { maxBytes: maxBytes as number | null })
  }
}

/** Validates the store-wide defaults. */
export function checkDefaults (defaults: PolicyDefaults): void {
  checkLimit('ttlMs', defaults.ttlMs, false)
  checkLimit('maxBytes', defaults.maxBytes, false)
}

/** The policy in force: the collection's own values, else the defaults. */
export function effectivePolicy (own: CollectionPolicy, defaults: PolicyDefaults): EffectivePolicy {
  return {
    ttlMs: own.ttlMs === undefined ? defaults.ttlMs ?? null : own.ttlMs,
    maxBytes: own.maxBytes === undefined ? defaults.maxBytes ?? null : own.maxBytes
  }
}

/** Whether a document written at `writtenAt` has expired at `now`. */
export function isExpired (writtenAt: number, policy: EffectivePolicy, now: number): boolean {
  return policy.ttlMs !== null && writtenAt + policy.ttlMs <= now
}
