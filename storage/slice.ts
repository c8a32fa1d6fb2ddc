/**
 * Results every provider shapes the same way from its own rows: a slice of the log cut to the
 * caps of one sync message, and the list of collections.
 */
import type { CollectionInfo, ReadLimits, StoredEntry } from './provider.js'

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

/** Collections from live-document counts and index rows, by name (a collection with only indexes counts 0). */
export function collectionList (counts: ReadonlyArray<{ name: string, count: number }>, indexes: ReadonlyArray<{ collection: string, path: string }>): CollectionInfo[] {
  const byName = new Map<string, { name: string, count: number, indexes: string[] }>()
  for (const c of counts) byName.set(c.name, { name: c.name, count: c.count, indexes: [] })
  for (const i of indexes) {
    let c = byName.get(i.collection)
    if (c === undefined) byName.set(i.collection, c = { name: i.collection, count: 0, indexes: [] })
    c.indexes.push(i.path)
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1))
}
