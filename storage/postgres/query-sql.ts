/**
 * Compiles a normalised query (storage/query.ts) to PostgreSQL over the `docs` table, with the
 * same meaning as the SQLite compiler (storage/sqlite/query-sql.ts), which the shared compliance
 * suite checks: documents are matched on `j`, the jsonb form of the body; a path walks object
 * keys only (`j->'a'->'b'`, never an array index); equality also matches array members; ranges
 * compare within one JSON type; text compares by code point (COLLATE "C"); numbers sort before
 * strings. Field expressions are generated in one canonical text form so that expression
 * indexes made by {@link indexExpression} match them.
 */
import type { FieldPath, Filter, NormalisedQuery, Scalar } from '../query.js'

/** A SQL fragment with its parameters ($1, $2, ... in order). */
export interface Sql {
  readonly text: string
  readonly params: unknown[]
}

/** Collects parameters and hands out their placeholders. */
class Params {
  readonly values: unknown[] = []
  constructor (first: readonly unknown[] = []) { this.values.push(...first) }
  add (v: unknown): string {
    this.values.push(v)
    return `$${this.values.length}`
  }
}

/** A string literal for a path segment (segments are validated: letters, digits, `_ $ - space`). */
function literal (s: string): string {
  return `'${s.replace(/'/g, "''")}'`
}

/** The jsonb value at a field path: `j->'a'->'b'` (the expression indexes are built on). */
export function jsonExpression (path: FieldPath): string {
  return `(j${path.segments.map(s => `->${literal(s)}`).join('')})`
}

/** The text of a string value at a field path, in code-point order. */
function textExpression (path: FieldPath): string {
  const init = path.segments.slice(0, -1).map(s => `->${literal(s)}`).join('')
  return `((j${init}->>${literal(path.segments[path.segments.length - 1] as string)}) COLLATE "C")`
}

/** The SQL expression a field's index is built on. */
export function indexExpression (path: FieldPath): string {
  return path.isId ? 'id' : jsonExpression(path)
}

const json = (v: Scalar): string => JSON.stringify(v)

/**
 * True when a jsonb value is a non-empty array, written as a range of jsonb's btree order
 * (booleans < non-empty arrays < objects; an empty array sorts below null) so that, next to an
 * equality on the same expression, the planner can answer both arms of the OR from a field's
 * expression index (a BitmapOr) instead of filtering every document of the collection.
 */
function nonEmptyArray (f: string): string {
  return `(${f} > 'true'::jsonb AND ${f} < '{}'::jsonb)`
}

function equality (path: FieldPath, value: Scalar, p: Params): string {
  if (path.isId) return typeof value === 'string' ? `id = ${p.add(value)}` : 'false'
  const f = jsonExpression(path)
  if (value === null) return `jsonb_typeof(${f}) = 'null'`
  const v = p.add(json(value))
  // a scalar equal, or an array that holds it
  return `(${f} = ${v}::jsonb OR (${nonEmptyArray(f)} AND ${f} @> jsonb_build_array(${v}::jsonb)))`
}

function compile (filter: Filter, p: Params): string {
  switch (filter.op) {
    case 'and':
    case 'or':
      if (filter.items.length === 0) return filter.op === 'and' ? 'true' : 'false'
      return `(${filter.items.map(i => compile(i, p)).join(filter.op === 'and' ? ' AND ' : ' OR ')})`
    case 'not':
      return `NOT COALESCE(${compile(filter.item, p)}, false)`
    case 'exists':
      if (filter.path.isId) return filter.exists ? 'true' : 'false'
      return `${jsonExpression(filter.path)} IS ${filter.exists ? 'NOT ' : ''}NULL`
    case 'prefix':
      if (filter.path.isId) return `starts_with(id, ${p.add(filter.prefix)})`
      return `(jsonb_typeof(${jsonExpression(filter.path)}) = 'string' AND starts_with(${textExpression(filter.path)}, ${p.add(filter.prefix)}))`
    case 'in':
    case 'nin': {
      let text: string
      if (filter.path.isId) {
        const ids = filter.values.filter((v): v is string => typeof v === 'string')
        text = ids.length > 0 ? `id = ANY(${p.add(ids)}::text[])` : 'false'
      } else {
        const f = jsonExpression(filter.path)
        const values = filter.values.filter(v => v !== null).map(json)
        if (values.length > 0) {
          const list = p.add(values)
          text = `(${f} = ANY(${list}::jsonb[]) OR (${nonEmptyArray(f)} AND EXISTS (SELECT 1 FROM jsonb_array_elements(${f}) e WHERE e = ANY(${list}::jsonb[]))))`
        } else {
          text = 'false'
        }
        if (filter.values.includes(null)) text = `(${text} OR ${f} IS NULL OR jsonb_typeof(${f}) = 'null')`
      }
      return filter.op === 'in' ? text : `NOT COALESCE(${text}, false)`
    }
    case 'cmp': {
      const v = filter.value
      switch (filter.cmp) {
        case 'eq':
          return equality(filter.path, v, p)
        case 'ne':
          return `NOT COALESCE(${equality(filter.path, v, p)}, false)`
        case 'contains': {
          if (filter.path.isId) return `strpos(id, ${p.add(String(v))}) > 0`
          const f = jsonExpression(filter.path)
          const member = `${f} @> jsonb_build_array(${p.add(json(v))}::jsonb)`
          const substring = typeof v === 'string' ? `strpos(${textExpression(filter.path)}, ${p.add(v)}) > 0` : 'false'
          return `(CASE jsonb_typeof(${f}) WHEN 'array' THEN ${member} WHEN 'string' THEN ${substring} ELSE false END)`
        }
        default: {
          const op = { gt: '>', gte: '>=', lt: '<', lte: '<=' }[filter.cmp]
          if (filter.path.isId) return typeof v === 'string' ? `(id COLLATE "C") ${op} ${p.add(v)}` : 'false'
          const f = jsonExpression(filter.path)
          // keep comparisons within one type, as SQLite does
          return typeof v === 'number'
            ? `(CASE WHEN jsonb_typeof(${f}) = 'number' THEN (${f})::numeric ${op} ${p.add(v)}::numeric ELSE false END)`
            : `(CASE WHEN jsonb_typeof(${f}) = 'string' THEN ${textExpression(filter.path)} ${op} ${p.add(v)} ELSE false END)`
        }
      }
    }
  }
}

/** The WHERE condition (without the keyword) of a filter, or 'true' when there is none. */
export function compileFilter (filter: Filter | undefined, params: unknown[]): string {
  if (filter === undefined) return 'true'
  const p = new Params()
  p.values.push(...params)
  const text = compile(filter, p)
  params.splice(0, params.length, ...p.values)
  return text
}

/**
 * Order terms for a field, as SQLite orders json_extract values: missing and null first, then
 * numbers (booleans count as 0 and 1), then strings, objects and arrays (by their text).
 */
function orderTerms (path: FieldPath, desc: boolean): string[] {
  const dir = desc ? 'DESC' : 'ASC'
  if (path.isId) return [`id COLLATE "C" ${dir}`]
  const f = jsonExpression(path)
  const t = `jsonb_typeof(${f})`
  return [
    `(CASE ${t} WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 2 WHEN 'array' THEN 2 ELSE 0 END) ${dir}`,
    `(CASE ${t} WHEN 'number' THEN (${f})::numeric WHEN 'boolean' THEN (CASE WHEN (${f})::boolean THEN 1 ELSE 0 END) END) ${dir}`,
    `(CASE ${t} WHEN 'string' THEN (${f} #>> '{}') WHEN 'object' THEN (${f})::text WHEN 'array' THEN (${f})::text END) COLLATE "C" ${dir}`
  ]
}

/** Full SELECT for a find query on one collection. */
export function compileFind (collection: string, query: NormalisedQuery): Sql {
  const params: unknown[] = [collection]
  const where = compileFilter(query.filter, params)
  const order = query.orderBy.flatMap(o => orderTerms(o.path, o.desc))
  if (!query.orderBy.some(o => o.path.isId)) order.push('id COLLATE "C" ASC')
  let text = `SELECT id, body FROM docs WHERE collection = $1 AND body IS NOT NULL AND ${where} ORDER BY ${order.join(', ')}`
  if (query.limit !== undefined || query.offset > 0) {
    params.push(query.limit ?? null, query.offset)
    text += ` LIMIT $${params.length - 1} OFFSET $${params.length}`
  }
  return { text, params }
}

/** SELECT count(*) for a filter on one collection. */
export function compileCount (collection: string, filter: Filter | undefined): Sql {
  const params: unknown[] = [collection]
  const where = compileFilter(filter, params)
  return { text: `SELECT count(*)::int AS n FROM docs WHERE collection = $1 AND body IS NOT NULL AND ${where}`, params }
}
