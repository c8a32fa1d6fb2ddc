/**
 * Chooses how the file provider finds candidates for a filter: by id, through one secondary
 * index, or by scanning the collection. Every plan yields a superset of the matches; the filter
 * itself is evaluated on each candidate afterwards.
 */
import type { Filter, Scalar } from '../query.js'
import { betweenRange, equalRange, prefixRange, type KeyRange } from './index-keys.js'

/** Where a find or count looks for candidates. */
export type Plan =
  | { readonly kind: 'scan' }
  | { readonly kind: 'ids', readonly ids: readonly string[] }
  | { readonly kind: 'index', readonly path: string, readonly ranges: readonly KeyRange[] }

const SCAN: Plan = { kind: 'scan' }

/** A query value as an index holds it: booleans as 1 and 0; null is not indexed. */
function indexed (v: Scalar): number | string | undefined {
  if (v === null) return undefined
  return typeof v === 'boolean' ? (v ? 1 : 0) : v
}

/** Key ranges holding every document a condition can match, or undefined when it needs a scan. */
function rangesOf (c: Filter, index: number): KeyRange[] | undefined {
  switch (c.op) {
    case 'in': {
      const values = c.values.map(indexed)
      // `in: [null]` also matches missing fields, which no index holds
      if (values.some(v => v === undefined)) return undefined
      return values.map(v => equalRange(index, v as number | string))
    }
    case 'prefix':
      return [prefixRange(index, c.prefix)]
    case 'cmp': {
      const v = c.value
      switch (c.cmp) {
        case 'eq': {
          const k = indexed(v)
          return k === undefined ? undefined : [equalRange(index, k)]
        }
        case 'gt': case 'gte':
          if (typeof v === 'number') return [betweenRange(index, v, null, 'number')]
          return typeof v === 'string' ? [betweenRange(index, v, null, 'string')] : undefined
        case 'lt': case 'lte':
          if (typeof v === 'number') return [betweenRange(index, null, v, 'number')]
          return typeof v === 'string' ? [betweenRange(index, null, v, 'string')] : undefined
        default:
          return undefined
      }
    }
    default:
      return undefined
  }
}

/** Ids a condition on `_id` limits the matches to, or undefined. */
function idsOf (c: Filter): string[] | undefined {
  if (c.op === 'cmp' && c.cmp === 'eq') return typeof c.value === 'string' ? [c.value] : []
  if (c.op === 'in') return c.values.filter((v): v is string => typeof v === 'string')
  return undefined
}

/**
 * The plan for a filter on a collection with these indexes (path text to index number): the
 * first condition of the top-level AND that an id lookup or an index can answer, else a scan.
 */
export function planFilter (filter: Filter | undefined, indexes: ReadonlyMap<string, number>): Plan {
  if (filter === undefined) return SCAN
  const conditions = filter.op === 'and' ? filter.items : [filter]
  for (const c of conditions) {
    if (c.op !== 'cmp' && c.op !== 'in' && c.op !== 'prefix') continue
    if (c.path.isId) {
      const ids = idsOf(c)
      if (ids !== undefined) return { kind: 'ids', ids: [...new Set(ids)] }
      continue
    }
    const path = c.path.segments.join('.')
    const index = indexes.get(path)
    if (index === undefined) continue
    const ranges = rangesOf(c, index)
    if (ranges !== undefined) return { kind: 'index', path, ranges }
  }
  return SCAN
}
