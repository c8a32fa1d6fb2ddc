/**
 * Yjs updates as log ops: validation of untrusted update bytes and merging of stored updates.
 * Yjs updates are themselves a CRDT (commutative, idempotent), so they are applied in whatever
 * order entries arrive.
 */
import * as Y from 'yjs'
import { MalformedError } from './errors.js'

/** Throws {@link MalformedError} when `update` is not a decodable Yjs (v1) update. */
export function checkYjsUpdate (update: Uint8Array): void {
  try {
    Y.decodeUpdate(update)
  } catch (err) {
    throw new MalformedError(`not a valid Yjs update: ${(err as Error).message}`)
  }
}

/** Merges Yjs updates into one (Y.mergeUpdates). */
export function mergeYjsUpdates (updates: readonly Uint8Array[]): Uint8Array {
  if (updates.length === 1) return updates[0] as Uint8Array
  return Y.mergeUpdates([...updates])
}
