/**
 * Evaluates normalised queries (storage/query.ts) in JavaScript against parsed document bodies,
 * with the results storage/sqlite/query-sql.ts gives on SQLite. A field is seen the way
 * `json_extract` returns it: null or missing as NULL, booleans as the integers 1 and 0, arrays
 * and objects as their JSON text; text compares by code point (SQLite's BINARY collation).
 */
import type { FieldPath, Filter, NormalisedQuery, Scalar } from '../query.js'
import type { JsonObject, JsonValue } from '../types.js'

/** A value as SQLite compares it: NULL, a number or text. */
export type SqlValue = number | string | null

// any string with the prefix sorts below prefix + U+10FFFF (query-sql.ts uses the same bound)
const PREFIX_END = String.fromCodePoint(0x10ffff)

/**
 * Compares strings by code point, as UTF-8 bytes compare: UTF-16 order differs from it only
 * between a surrogate and a unit in U+E000..U+FFFF.
 */
export function compareText (a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) return (x >= 0xe000 ? x - 0x800 : x + 0x2000) - (y >= 0xe000 ? y - 0x800 : y + 0x2000)
    return x - y
  }
  return a.length - b.length
}

/** The value at a field path: each segment is an object key, never an array index. */
export function valueAt (body: JsonObject, path: FieldPath): JsonValue | undefined {
  let cur: JsonValue | undefined = body
  for (const s of path.segments) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, s)) return undefined
    cur = cur[s]
  }
  return cur
}

/** A JSON value as `json_extract` (or `json_each`) hands it to SQL. */
export function sqlValue (v: JsonValue | undefined): SqlValue {
  if (v === undefined || v === null) return null
  switch (typeof v) {
    case 'boolean': return v ? 1 : 0
    case 'number':
    case 'string': return v
    default: return JSON.stringify(v)
  }
}

/** A query value as bound to a statement (booleans become 1 and 0). */
function bound (v: Scalar): SqlValue {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v
}

/** SQL `=` between values without affinity: NULL equals nothing, a number never equals text. */
function sqlEquals (a: SqlValue, b: SqlValue): boolean {
  return a !== null && a === b
}

/** The field equals the value, or is an array with a member that does (`json_each`). */
function equalsOrHas (f: JsonValue | undefined, v: SqlValue): boolean {
  if (sqlEquals(sqlValue(f), v)) return true
  return Array.isArray(f) && f.some(m => sqlEquals(sqlValue(m), v))
}

function equality (path: FieldPath, id: string, f: JsonValue | undefined, v: Scalar): boolean {
  // ids are text: a number, boolean or null never equals one
  if (path.isId) return typeof v === 'string' && id === v
  if (v === null) return f === null
  if (typeof v === 'boolean') return f === v
  return equalsOrHas(f, v)
}

function membership (path: FieldPath, id: string, f: JsonValue | undefined, values: readonly Scalar[]): boolean {
  if (path.isId) return values.some(v => typeof v === 'string' && v === id)
  const hasNull = values.includes(null)
  if (hasNull && (f === undefined || f === null)) return true
  for (const v of values) if (v !== null && equalsOrHas(f, bound(v))) return true
  return false
}

function range (cmp: 'gt' | 'gte' | 'lt' | 'lte', s: SqlValue, v: Scalar): boolean {
  let order: number
  if (typeof v === 'number' && typeof s === 'number') order = s - v
  else if (typeof v === 'string' && typeof s === 'string') order = compareText(s, v)
  else return false
  switch (cmp) {
    case 'gt': return order > 0
    case 'gte': return order >= 0
    case 'lt': return order < 0
    case 'lte': return order <= 0
  }
}

function contains (path: FieldPath, id: string, f: JsonValue | undefined, v: Scalar): boolean {
  if (path.isId) return id.includes(String(v))
  if (Array.isArray(f)) {
    const b = bound(v)
    return f.some(m => sqlEquals(sqlValue(m), b))
  }
  return typeof f === 'string' && typeof v === 'string' && f.includes(v)
}

/** Whether a document matches a filter (undefined matches every document). */
export function matchesFilter (filter: Filter | undefined, id: string, body: JsonObject): boolean {
  if (filter === undefined) return true
  switch (filter.op) {
    case 'and': return filter.items.every(i => matchesFilter(i, id, body))
    case 'or': return filter.items.some(i => matchesFilter(i, id, body))
    case 'not': return !matchesFilter(filter.item, id, body)
    case 'exists': return filter.path.isId ? filter.exists : (valueAt(body, filter.path) !== undefined) === filter.exists
    case 'prefix': {
      const s = filter.path.isId ? id : sqlValue(valueAt(body, filter.path))
      return typeof s === 'string' && compareText(s, filter.prefix) >= 0 && compareText(s, filter.prefix + PREFIX_END) < 0
    }
    case 'in':
    case 'nin': {
      const inside = membership(filter.path, id, filter.path.isId ? undefined : valueAt(body, filter.path), filter.values)
      return filter.op === 'in' ? inside : !inside
    }
    case 'cmp': {
      const f = filter.path.isId ? undefined : valueAt(body, filter.path)
      switch (filter.cmp) {
        case 'eq': return equality(filter.path, id, f, filter.value)
        case 'ne': return !equality(filter.path, id, f, filter.value)
        case 'contains': return contains(filter.path, id, f, filter.value)
        default: return range(filter.cmp, filter.path.isId ? id : sqlValue(f), filter.value)
      }
    }
  }
}

/** SQLite's order of values: NULL, then numbers, then text. */
export function compareSql (a: SqlValue, b: SqlValue): number {
  if (a === b) return 0
  if (a === null) return -1
  if (b === null) return 1
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1
  return typeof b === 'number' ? 1 : compareText(a, b)
}

/** A document as the sort sees it. */
export interface Sortable {
  readonly id: string
  readonly body: JsonObject
}

/**
 * Sorts documents by a query's `orderBy`, ties broken by id in code-point order, as SQLite sorts
 * them. Each document's sort keys are computed once.
 */
export function sortByOrder<T extends Sortable> (docs: readonly T[], orderBy: NormalisedQuery['orderBy']): T[] {
  const keyed = docs.map(doc => ({ doc, keys: orderBy.map(o => o.path.isId ? doc.id : sqlValue(valueAt(doc.body, o.path))) }))
  keyed.sort((a, b) => {
    for (let i = 0; i < orderBy.length; i++) {
      const c = compareSql(a.keys[i] as SqlValue, b.keys[i] as SqlValue)
      if (c !== 0) return orderBy[i]?.desc === true ? -c : c
    }
    return compareText(a.doc.id, b.doc.id)
  })
  return keyed.map(k => k.doc)
}
