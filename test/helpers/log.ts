import type { StoredEntry } from '../../storage/index.js'

/**
 * Stored entries as a peer hands them over: their bytes, and the chain signatures stored with
 * them by index (what a sync batch carries).
 */
export function asSent (rows: readonly StoredEntry[]): { entries: Uint8Array[], sigs: Map<number, Uint8Array> } {
  const sigs = new Map<number, Uint8Array>()
  rows.forEach((r, i) => { if (r.sig != null) sigs.set(i, r.sig) })
  return { entries: rows.map(r => r.bytes), sigs }
}
