/**
 * Cuts a slice of the log to the caps of one sync message, the same way on every provider.
 */
import type { ReadLimits, StoredEntry } from './provider.js'

/**
 * Takes entries in order while they fit `limits` (the first always does). `next` is the position
 * to continue from, or undefined when the rows ran out before the caps did.
 */
export function takeWithin (rows: Iterable<StoredEntry>, limits: ReadLimits): { entries: StoredEntry[], next: number | undefined } {
  const entries: StoredEntry[] = []
  let bytes = 0
  for (const row of rows) {
    if (entries.length > 0 && bytes + row.bytes.length > limits.maxBytes) return { entries, next: entries[entries.length - 1]?.pos }
    entries.push(row)
    bytes += row.bytes.length
  }
  return { entries, next: entries.length === limits.maxEntries ? entries[entries.length - 1]?.pos : undefined }
}
