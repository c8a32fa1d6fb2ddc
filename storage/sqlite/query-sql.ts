/**
 * Compiles a normalised query (storage/query.ts) to SQLite SQL over the `docs` table, using
 * JSON expressions on the stored body. Field expressions are generated in one canonical text
 * form, `json_extract(body, '$."a"."b"')`, so that expression indexes created by
 * {@link indexExpression} match them.
 */
import type { FieldPath, Filter, NormalisedQuery, Scalar } from '../query.js'

/** A SQL fragment with its positional parameters. */
export interface Sql {
  readonly text: string
  readonly params: unknown[]
}

/** The JSON path literal of a field path: `'$."a"."b"'` (segments are validated: no quotes). */
export function jsonPathLiteral (path: FieldPath): string {
  return `'$${path.segments.map(s => `."${s}"`).join('')}'`
}

/** The SQL expression for a field's value (also the expression its index is built on). */
export function indexExpression (path: FieldPath): string {
  return path.isId ? 'id' : `json_extract(body, ${jsonPathLiteral(path)})`
}

function bind (v: Scalar): unknown {
  return typeof v === 'boolean' ? (v ? 1 : 0) : v
}

// Max code point: any string with the prefix sorts below prefix + U+10FFFF in BINARY collation.
const PREFIX_END = String.fromCodePoint(0x10ffff)

function equality (path: FieldPath, value: Scalar, params: unknown[]): string {
  const f = indexExpression(path)
  if (path.isId) {
    params.push(value)
    return `${f} = ?`
  }
  const p = jsonPathLiteral(path)
  if (value === null) return `json_type(body, ${p}) = 'null'`
  if (typeof value === 'boolean') return `json_type(body, ${p}) = '${value ? 'true' : 'false'}'`
  // a scalar equal, or an array that contains it
  params.push(value, value)
  return `(${f} = ? OR (json_type(body, ${p}) = 'array' AND EXISTS (SELECT 1 FROM json_each(body, ${p}) WHERE value = ?)))`
}

function compile (filter: Filter, params: unknown[]): string {
  switch (filter.op) {
    case 'and':
    case 'or':
      // `where: {}` normalises to an empty and: it matches every document
      if (filter.items.length === 0) return filter.op === 'and' ? '1' : '0'
      return `(${filter.items.map(i => compile(i, params)).join(filter.op === 'and' ? ' AND ' : ' OR ')})`
    case 'not':
      return `NOT COALESCE(${compile(filter.item, params)}, 0)`
    case 'exists':
      if (filter.path.isId) return filter.exists ? '1' : '0'
      return `json_type(body, ${jsonPathLiteral(filter.path)}) IS ${filter.exists ? 'NOT ' : ''}NULL`
    case 'prefix': {
      const f = indexExpression(filter.path)
      params.push(filter.prefix, filter.prefix + PREFIX_END)
      return `(${f} >= ? AND ${f} < ? AND typeof(${f}) = 'text')`
    }
    case 'in':
    case 'nin': {
      const f = indexExpression(filter.path)
      const hasNull = filter.values.includes(null)
      const values = filter.values.filter(v => v !== null).map(bind)
      let text: string
      if (filter.path.isId) {
        params.push(...values)
        text = values.length > 0 ? `${f} IN (${values.map(() => '?').join(', ')})` : '0'
      } else {
        const p = jsonPathLiteral(filter.path)
        const m = values.map(() => '?').join(', ')
        params.push(...values, ...values)
        text = values.length > 0
          ? `(${f} IN (${m}) OR (json_type(body, ${p}) = 'array' AND EXISTS (SELECT 1 FROM json_each(body, ${p}) WHERE value IN (${m}))))`
          : '0'
        if (hasNull) text = `(${text} OR ${f} IS NULL)`
      }
      return filter.op === 'in' ? text : `NOT COALESCE(${text}, 0)`
    }
    case 'cmp': {
      const f = indexExpression(filter.path)
      const v = filter.value
      switch (filter.cmp) {
        case 'eq':
          return equality(filter.path, v, params)
        case 'ne':
          return `NOT COALESCE(${equality(filter.path, v, params)}, 0)`
        case 'contains': {
          if (filter.path.isId) {
            params.push(String(v))
            return `instr(id, ?) > 0`
          }
          const p = jsonPathLiteral(filter.path)
          params.push(bind(v), typeof v === 'string' ? v : null)
          return `(CASE json_type(body, ${p}) WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each(body, ${p}) WHERE value = ?) WHEN 'text' THEN instr(${f}, ?) > 0 ELSE 0 END)`
        }
        default: {
          const op = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[filter.cmp]
          params.push(v)
          // SQLite orders numbers below text: keep comparisons within one type
          const type = typeof v === 'number' ? `typeof(${f}) IN ('integer', 'real')` : `typeof(${f}) = 'text'`
          return `(${f} ${op} ? AND ${type})`
        }
      }
    }
  }
}

/** The WHERE clause (without the keyword) of a filter, or '1' when there is none. */
export function compileFilter (filter: Filter | undefined, params: unknown[]): string {
  return filter === undefined ? '1' : compile(filter, params)
}

/** Full SELECT for a find query on one collection. */
export function compileFind (collection: string, query: NormalisedQuery): Sql {
  const params: unknown[] = [collection]
  const where = compileFilter(query.filter, params)
  const order = query.orderBy.map(o => `${indexExpression(o.path)} ${o.desc ? 'DESC' : 'ASC'}`)
  if (!query.orderBy.some(o => o.path.isId)) order.push('id ASC')
  let text = `SELECT id, body FROM docs WHERE collection = ? AND body IS NOT NULL AND ${where} ORDER BY ${order.join(', ')}`
  if (query.limit !== undefined || query.offset > 0) {
    text += ' LIMIT ? OFFSET ?'
    params.push(query.limit ?? -1, query.offset)
  }
  return { text, params }
}

/** SELECT count(*) for a filter on one collection. */
export function compileCount (collection: string, filter: Filter | undefined): Sql {
  const params: unknown[] = [collection]
  const where = compileFilter(filter, params)
  return { text: `SELECT count(*) AS n FROM docs WHERE collection = ? AND body IS NOT NULL AND ${where}`, params }
}
