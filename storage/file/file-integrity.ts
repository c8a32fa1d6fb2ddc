/**
 * The file provider's integrity check: every document decodes to a JSON object, every collection
 * record matches its documents, and the expiry, recency and index keys are exactly those the
 * documents need.
 */
import { isPlainObject } from '../../crdt/index.js'
import type { JsonObject } from '../types.js'
import { valueAt } from './filter-eval.js'
import { docSize, type CollectionRecord, type FileTables } from './file-tables.js'
import { entryKeys } from './index-keys.js'

/** Problems listed at most (a longer list is cut, as SQLite's check is). */
const MAX_PROBLEMS = 100

interface Tally { count: number, bytes: number }

function countBy<K> (entries: Iterable<{ key: K }>, group: (key: K) => string): Map<string, number> {
  const out = new Map<string, number>()
  for (const { key } of entries) {
    const g = group(key)
    out.set(g, (out.get(g) ?? 0) + 1)
  }
  return out
}

/** Problems of the tables, one per line; none when they are consistent. */
export function checkTables (t: FileTables): string[] {
  const problems: string[] = []
  const note = (p: string): void => { if (problems.length < MAX_PROBLEMS) problems.push(p) }
  const records = new Map<string, CollectionRecord>()
  for (const { key, value } of t.colls.getRange()) records.set(key, value)
  const tally = new Map<string, Tally>()
  const indexKeys = new Map<number, number>()
  for (const { key, value } of t.docs.getRange()) {
    const [c, id] = key
    const rec = records.get(c)
    let t1 = tally.get(c)
    if (t1 === undefined) {
      tally.set(c, t1 = { count: 0, bytes: 0 })
      if (rec === undefined) note(`collection ${JSON.stringify(c)} has documents but no record`)
    }
    const [writtenAt, body] = Array.isArray(value) ? value as unknown[] : []
    if (typeof writtenAt !== 'number' || !isPlainObject(body)) {
      note(`document ${JSON.stringify(id)} of ${c}: not a write time and a JSON object`)
      continue
    }
    t1.count++
    t1.bytes += docSize(t, key)
    if (rec === undefined) continue
    if (rec.expiry && !t.expiry.doesExist([c, writtenAt, id])) note(`document ${JSON.stringify(id)} of ${c} has no expiry key`)
    if (rec.recency) {
      const tick = t.used.get([c, id])
      if (tick === undefined || t.recency.get([c, tick]) !== id) note(`document ${JSON.stringify(id)} of ${c} has no recency key`)
    }
    for (const [path, no] of Object.entries(rec.indexes)) {
      if (path === '_id') continue
      const keys = entryKeys(no, valueAt(body as JsonObject, { segments: path.split('.'), isId: false }), id)
      indexKeys.set(no, (indexKeys.get(no) ?? 0) + keys.length)
      if (!keys.every(k => t.index.doesExist(k))) note(`document ${JSON.stringify(id)} of ${c} is missing from the index on ${path}`)
    }
  }
  const expiry = countBy(t.expiry.getRange(), k => k[0])
  const recency = countBy(t.recency.getRange(), k => k[0])
  const used = countBy(t.used.getRange(), k => k[0])
  const index = countBy(t.index.getRange(), k => String(k.readUInt32BE(0)))
  for (const [c, rec] of records) {
    const have = tally.get(c) ?? { count: 0, bytes: 0 }
    if (have.count !== rec.count) note(`collection ${c}: record says ${rec.count} documents, found ${have.count}`)
    if (rec.recency && have.bytes !== rec.bytes) note(`collection ${c}: record says ${rec.bytes} bytes, its documents weigh ${have.bytes}`)
    const keys: Array<[string, Map<string, number>, boolean]> = [['expiry', expiry, rec.expiry], ['recency', recency, rec.recency], ['used', used, rec.recency]]
    for (const [name, counts, kept] of keys) {
      const n = counts.get(c) ?? 0
      if (n !== (kept ? have.count : 0)) note(`collection ${c}: ${n} ${name} keys for ${kept ? have.count : 0} expected`)
      counts.delete(c)
    }
    for (const [path, no] of Object.entries(rec.indexes)) {
      const n = index.get(String(no)) ?? 0
      if (n !== (indexKeys.get(no) ?? 0)) note(`collection ${c}: the index on ${path} has ${n} keys, its documents need ${indexKeys.get(no) ?? 0}`)
      index.delete(String(no))
    }
  }
  for (const [name, counts] of [['expiry', expiry], ['recency', recency], ['used', used]] as const) {
    for (const [c, n] of counts) note(`${n} ${name} keys of collection ${JSON.stringify(c)}, which has no record`)
  }
  for (const [no, n] of index) note(`${n} keys of index ${no}, which no collection has`)
  return problems
}
