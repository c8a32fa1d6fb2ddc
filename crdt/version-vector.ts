/**
 * Version vectors: for each author, the highest seq held contiguously. Because entries are
 * applied only after their predecessors, a vector says exactly which entries a log holds, and the
 * difference of two vectors says exactly what one side lacks.
 */
import { MalformedError, TooLargeError } from './errors.js'
import { isDeviceId, type DeviceId } from '../identity/index.js'

/** author -> highest contiguous seq. */
export type VersionVector = ReadonlyMap<DeviceId, number>

/** Most authors a vector from the network may list. */
export const MAX_VECTOR_AUTHORS = 10_000

/** For each author where `remote` is behind `local`, the seq range remote lacks: (from, to]. */
export function lacking<K extends string> (local: ReadonlyMap<K, number>, remote: ReadonlyMap<K, number>): Array<{ author: K, after: number, upTo: number }> {
  const out: Array<{ author: K, after: number, upTo: number }> = []
  for (const [author, seq] of local) {
    const theirs = remote.get(author) ?? 0
    if (seq > theirs) out.push({ author, after: theirs, upTo: seq })
  }
  return out
}

/** True when `a` holds everything `b` holds. */
export function dominates<K extends string> (a: ReadonlyMap<K, number>, b: ReadonlyMap<K, number>): boolean {
  for (const [author, seq] of b) if ((a.get(author) ?? 0) < seq) return false
  return true
}

/** Number of entries `remote` lacks relative to `local`. */
export function missingCount<K extends string> (local: ReadonlyMap<K, number>, remote: ReadonlyMap<K, number>): number {
  let n = 0
  for (const r of lacking(local, remote)) n += r.upTo - r.after
  return n
}

/** Wire form: sorted [author, seq] pairs. */
export function vectorToWire<K extends string> (v: ReadonlyMap<K, number>): Array<[K, number]> {
  return [...v.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

/** Validates an untrusted wire-form vector. */
export function vectorFromWire (value: unknown): Map<DeviceId, number> {
  if (!Array.isArray(value)) throw new MalformedError('version vector expected an array')
  if (value.length > MAX_VECTOR_AUTHORS) throw new TooLargeError(`version vector lists ${value.length} authors, over ${MAX_VECTOR_AUTHORS}`)
  const out = new Map<DeviceId, number>()
  for (const pair of value) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new MalformedError('version vector item expected [author, seq]')
    const [author, seq] = pair as unknown[]
    if (!isDeviceId(author)) throw new MalformedError('version vector author expected a DeviceId')
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new MalformedError('version vector seq expected an integer >= 0')
    out.set(author, seq)
  }
  return out
}

/** Plain-object form for JSON output. */
export function vectorToJson (v: VersionVector): Record<string, number> {
  return Object.fromEntries(vectorToWire(v))
}
