/**
 * The query language shared by every provider: a `where` filter of field conditions, `orderBy`,
 * `limit` and `offset`. This module validates a query into a normalised form; each provider
 * compiles that form to its own SQL.
 *
 * ```ts
 * { where: { tags: 'a', year: { gte: 2020 }, $or: [{ draft: false }, { owner: 'me' }] },
 *   orderBy: ['-year', 'title'], limit: 20 }
 * ```
 * A bare value means equality; on an array field it means "contains". Operators: `eq`, `ne`,
 * `gt`, `gte`, `lt`, `lte`, `in`, `nin`, `exists`, `contains`, `prefix`. Field paths use dots
 * for nesting (`address.city`); `_id` is the document id.
 */
import { InvalidQueryError } from './errors.js'

/** A value a condition may compare against. */
export type Scalar = string | number | boolean | null

/** Conditions on one field. */
export interface Condition {
  eq?: Scalar
  ne?: Scalar
  gt?: string | number
  gte?: string | number
  lt?: string | number
  lte?: string | number
  in?: Scalar[]
  nin?: Scalar[]
  exists?: boolean
  contains?: Scalar
  prefix?: string
}

/** A filter: field conditions, combined with AND, plus optional `$and`, `$or`, `$not`. */
export interface Where {
  $and?: Where[]
  $or?: Where[]
  $not?: Where
  [field: string]: Scalar | Condition | Where[] | Where | undefined
}

/** A find query. */
export interface FindQuery {
  where?: Where
  /** Field path, `-path` for descending, or a list of them. Ties break by `_id`. */
  orderBy?: string | string[]
  /** At most this many documents (1..100000). */
  limit?: number
  offset?: number
}

/** Normalised filter tree. */
export type Filter =
  | { readonly op: 'and' | 'or', readonly items: readonly Filter[] }
  | { readonly op: 'not', readonly item: Filter }
  | { readonly op: 'cmp', readonly path: FieldPath, readonly cmp: CmpOp, readonly value: Scalar }
  | { readonly op: 'in' | 'nin', readonly path: FieldPath, readonly values: readonly Scalar[] }
  | { readonly op: 'exists', readonly path: FieldPath, readonly exists: boolean }
  | { readonly op: 'prefix', readonly path: FieldPath, readonly prefix: string }

export type CmpOp = 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte' | 'contains'

/** A validated field path: `_id` or dot-separated segments. */
export interface FieldPath {
  readonly segments: readonly string[]
  readonly isId: boolean
}

/** A validated query. */
export interface NormalisedQuery {
  readonly filter: Filter | undefined
  readonly orderBy: ReadonlyArray<{ readonly path: FieldPath, readonly desc: boolean }>
  readonly limit: number | undefined
  readonly offset: number
}

export const MAX_LIMIT = 100_000
const MAX_IN_VALUES = 1000
const MAX_FILTER_NODES = 256
const SEGMENT = /^[A-Za-z0-9_$-][A-Za-z0-9_$ .-]{0,127}$/
const OPERATORS = new Set(['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'exists', 'contains', 'prefix'])

function fail (message: string): never {
  throw new InvalidQueryError(message)
}

/** Validates a field path such as `address.city`. */
export function parseFieldPath (path: unknown): FieldPath {
  if (typeof path !== 'string' || path.length === 0 || path.length > 512) fail(`field path expected a non-empty string, got ${JSON.stringify(path)}`)
  if (path === '_id') return { segments: [], isId: true }
  const segments = path.split('.')
  for (const s of segments) {
    if (!SEGMENT.test(s) || s === '__proto__') fail(`field path ${JSON.stringify(path)} has an invalid segment ${JSON.stringify(s)} (letters, digits, _ $ - only)`)
  }
  return { segments, isId: false }
}

function isScalar (v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
}

function isPlain (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

interface Budget { nodes: number }

function scalarOf (v: unknown, what: string): Scalar {
  if (!isScalar(v)) fail(`${what} expected a string, number, boolean or null, got ${Array.isArray(v) ? 'array' : typeof v}`)
  return v
}

function fieldConditions (path: FieldPath, name: string, cond: unknown, budget: Budget): Filter[] {
  if (!isPlain(cond)) return [{ op: 'cmp', path, cmp: 'eq', value: scalarOf(cond, `"${name}"`) }]
  const out: Filter[] = []
  for (const [op, v] of Object.entries(cond)) {
    if (!OPERATORS.has(op)) fail(`"${name}": unknown operator ${JSON.stringify(op)} (expected one of ${[...OPERATORS].join(', ')})`)
    if (++budget.nodes > MAX_FILTER_NODES) fail(`filter has more than ${MAX_FILTER_NODES} conditions`)
    switch (op) {
      case 'in':
      case 'nin': {
        if (!Array.isArray(v) || v.length > MAX_IN_VALUES) fail(`"${name}.${op}" expected an array of at most ${MAX_IN_VALUES} values`)
        out.push({ op, path, values: v.map((x, i) => scalarOf(x, `"${name}.${op}[${i}]"`)) })
        break
      }
      case 'exists':
        if (typeof v !== 'boolean') fail(`"${name}.exists" expected true or false`)
        out.push({ op: 'exists', path, exists: v })
        break
      case 'prefix':
        if (typeof v !== 'string') fail(`"${name}.prefix" expected a string`)
        out.push({ op: 'prefix', path, prefix: v })
        break
      case 'gt': case 'gte': case 'lt': case 'lte':
        if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) fail(`"${name}.${op}" expected a string or number`)
        out.push({ op: 'cmp', path, cmp: op, value: v })
        break
      default:
        out.push({ op: 'cmp', path, cmp: op as CmpOp, value: scalarOf(v, `"${name}.${op}"`) })
    }
  }
  return out
}

function whereFilter (where: unknown, budget: Budget, depth: number): Filter {
  if (!isPlain(where)) fail('"where" expected an object of field conditions')
  if (depth > 16) fail('"where" is nested too deeply')
  const items: Filter[] = []
  for (const [key, value] of Object.entries(where)) {
    if (value === undefined) continue
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(value) || value.length === 0) fail(`"${key}" expected a non-empty array of filters`)
      items.push({ op: key === '$and' ? 'and' : 'or', items: value.map(w => whereFilter(w, budget, depth + 1)) })
    } else if (key === '$not') {
      items.push({ op: 'not', item: whereFilter(value, budget, depth + 1) })
    } else if (key.startsWith('$')) {
      fail(`unknown filter keyword ${JSON.stringify(key)} (expected $and, $or or $not)`)
    } else {
      if (++budget.nodes > MAX_FILTER_NODES) fail(`filter has more than ${MAX_FILTER_NODES} conditions`)
      items.push(...fieldConditions(parseFieldPath(key), key, value, budget))
    }
  }
  return items.length === 1 ? items[0] as Filter : { op: 'and', items }
}

/** Validates a `where` filter alone. */
export function normaliseWhere (where: unknown): Filter | undefined {
  if (where === undefined) return undefined
  return whereFilter(where, { nodes: 0 }, 0)
}

/** Validates a find query. Throws {@link InvalidQueryError} naming the offending part. */
export function normaliseQuery (query: unknown = {}): NormalisedQuery {
  if (!isPlain(query)) fail('query expected an object')
  for (const k of Object.keys(query)) {
    if (!['where', 'orderBy', 'limit', 'offset'].includes(k)) fail(`unknown query option ${JSON.stringify(k)} (expected where, orderBy, limit, offset)`)
  }
  const { where, orderBy, limit, offset } = query
  const order = orderBy === undefined ? [] : Array.isArray(orderBy) ? orderBy : [orderBy]
  if (order.length > 8) fail('"orderBy" accepts at most 8 fields')
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)) fail(`"limit" expected an integer in 1..${MAX_LIMIT}, got ${JSON.stringify(limit)}`)
  if (offset !== undefined && (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0)) fail(`"offset" expected an integer >= 0, got ${JSON.stringify(offset)}`)
  return {
    filter: normaliseWhere(where),
    orderBy: order.map(o => {
      if (typeof o !== 'string') fail('"orderBy" expected field paths')
      const desc = o.startsWith('-')
      return { path: parseFieldPath(desc ? o.slice(1) : o), desc }
    }),
    limit,
    offset: offset ?? 0
  }
}
