/**
 * Pure checks of SQL text for steps that may lose data: DROP TABLE/SCHEMA/DATABASE, dropping a
 * column, TRUNCATE, DELETE without WHERE, and narrowing a column's type. No I/O: the column's
 * current type is looked up by the caller (the migrator, in the migration's transaction).
 */

/**
 * Splits SQL into statements at top-level `;`, keeping quoted text, dollar-quoted bodies,
 * comments and SQLite trigger bodies (`BEGIN … END`) whole. Empty statements are dropped.
 */
export function splitStatements (sql: string): string[] {
  const out: string[] = []
  let start = 0
  let i = 0
  const push = (end: number): void => {
    // comments before a statement belong to no statement
    const s = sql.slice(start, end).replace(/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/, '').trim()
    if (maskSql(s).length > 0) out.push(s)
  }
  while (i < sql.length) {
    const c = sql[i]
    if (c === '\'' || c === '"' || c === '`') {
      i = closing(sql, i + 1, c)
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i)
      i = nl < 0 ? sql.length : nl + 1
    } else if (c === '/' && sql[i + 1] === '*') {
      const e = sql.indexOf('*/', i + 2)
      i = e < 0 ? sql.length : e + 2
    } else if (c === '$' && /^\$[A-Za-z_]?\w*\$/.test(sql.slice(i))) {
      const tag = /^\$[A-Za-z_]?\w*\$/.exec(sql.slice(i))?.[0] ?? '$$'
      const e = sql.indexOf(tag, i + tag.length)
      i = e < 0 ? sql.length : e + tag.length
    } else if (c === ';') {
      const masked = maskSql(sql.slice(start, i))
      // a trigger body holds `;` of its own, up to its END
      if (/^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i.test(masked) && !/\bEND\s*$/i.test(masked)) {
        i++
        continue
      }
      push(i)
      start = ++i
    } else {
      i++
    }
  }
  push(sql.length)
  return out
}

/** The index after the quote that closes one opened before `from` (doubled quotes escape). */
function closing (sql: string, from: number, quote: string): number {
  let i = from
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote) i += 2
      else return i + 1
    } else {
      i++
    }
  }
  return i
}

/** The statement without comments, with string literals and dollar-quoted bodies emptied and spaces collapsed. */
export function maskSql (sql: string): string {
  return sql
    .replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ')
    .replace(/'(?:[^']|'')*'/g, '\'\'')
    .replace(/(\$[A-Za-z_]?\w*\$)[\s\S]*?\1/g, '$$$$')
    .replace(/\s+/g, ' ')
    .trim()
}

/** A column type change that narrows or not depending on the column's current type. */
export interface TypeChange {
  /** The table as written in the statement (possibly schema-qualified and quoted). */
  readonly table: string
  /** The column name as stored (unquoted, folded to lower case when unquoted). */
  readonly column: string
  readonly to: string
}

/** What a statement may lose: certain reasons, and type changes to check against current types. */
export interface StatementRisk {
  readonly reasons: string[]
  readonly typeChanges: TypeChange[]
}

const NAME = '(?:"(?:[^"]|"")+"|[A-Za-z_][\\w$]*)'
const QUALIFIED = `${NAME}(?:\\.${NAME})?`
const NOT_A_COLUMN = new Set(['CONSTRAINT', 'DEFAULT', 'NOT', 'IDENTITY', 'EXPRESSION'])

/** The name as the database stores it: quotes removed, unquoted names folded to lower case. */
export function identifier (name: string): string {
  return name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase()
}

/**
 * The ways one statement may lose data.
 *
 * @example
 * ```ts
 * assessStatement('ALTER TABLE users DROP COLUMN email')
 * // { reasons: ['drops column email of users'], typeChanges: [] }
 * ```
 */
export function assessStatement (sql: string): StatementRisk {
  const m = maskSql(sql)
  const reasons: string[] = []
  const typeChanges: TypeChange[] = []
  const drop = new RegExp(`^DROP (TABLE|SCHEMA|DATABASE) (?:IF EXISTS )?(${QUALIFIED}(?: ?, ?${QUALIFIED})*)`, 'i').exec(m)
  if (drop !== null) reasons.push(`drops ${drop[1]?.toLowerCase() ?? ''} ${drop[2] ?? ''}`)
  const truncate = new RegExp(`^TRUNCATE (?:TABLE )?(?:ONLY )?(${QUALIFIED}(?: ?, ?${QUALIFIED})*)`, 'i').exec(m)
  if (truncate !== null) reasons.push(`truncates ${truncate[1] ?? ''}`)
  const del = new RegExp(`^DELETE FROM (?:ONLY )?(${QUALIFIED})`, 'i').exec(m)
  if (del !== null && !/\bWHERE\b/i.test(m)) reasons.push(`deletes every row of ${del[1] ?? ''} (DELETE without WHERE)`)
  const alter = new RegExp(`^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(${QUALIFIED}) (.*)$`, 'i').exec(m)
  if (alter !== null) {
    const table = alter[1] ?? ''
    for (const action of topLevelParts(alter[2] ?? '')) {
      const dropColumn = new RegExp(`^DROP (?:(COLUMN) )?(?:IF EXISTS )?(${NAME})`, 'i').exec(action)
      if (dropColumn !== null && (dropColumn[1] !== undefined || !NOT_A_COLUMN.has((dropColumn[2] ?? '').toUpperCase()))) {
        reasons.push(`drops column ${identifier(dropColumn[2] ?? '')} of ${table}`)
      }
      const retype = new RegExp(`^ALTER (?:COLUMN )?(${NAME}) (?:SET DATA )?TYPE (.+?)(?: (?:USING|COLLATE) .*)?$`, 'i').exec(action)
      if (retype !== null) typeChanges.push({ table, column: identifier(retype[1] ?? ''), to: (retype[2] ?? '').trim() })
    }
  }
  return { reasons, typeChanges }
}

/** Splits at commas outside parentheses. */
function topLevelParts (text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim())
      start = i + 1
    }
  }
  parts.push(text.slice(start).trim())
  return parts.filter(p => p.length > 0)
}

/** A type reduced to a family and its size arguments. */
interface TypeShape { family: string, args: number[] }

const FAMILIES: Array<[RegExp, string]> = [
  [/^(smallint|int2)$/, 'int2'],
  [/^(integer|int|int4|serial|serial4)$/, 'int4'],
  [/^(bigint|int8|bigserial|serial8)$/, 'int8'],
  [/^(numeric|decimal)$/, 'numeric'],
  [/^(real|float4)$/, 'float4'],
  [/^(double precision|float8|float)$/, 'float8'],
  [/^(character varying|varchar)$/, 'varchar'],
  [/^(character|char|bpchar)$/, 'char'],
  [/^text$/, 'text']
]

function shape (type: string): TypeShape {
  const t = type.trim().toLowerCase().replace(/\s+/g, ' ').replace(/^pg_catalog\./, '')
  const m = /^([a-z ]+?) ?(?:\(([\d ,]+)\))?$/.exec(t)
  const base = m?.[1] ?? t
  const args = (m?.[2] ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0).map(Number)
  const family = FAMILIES.find(([re]) => re.test(base))?.[1] ?? t
  return { family, args }
}

const INTEGER_RANK: Record<string, number> = { int2: 1, int4: 2, int8: 3 }

/**
 * Whether changing a column from type `from` to type `to` may lose values: true (it narrows),
 * false (every value fits), or undefined (not known here; treat as narrowing).
 *
 * @example
 * ```ts
 * narrows('integer', 'bigint') // false
 * narrows('character varying(100)', 'varchar(20)') // true
 * ```
 */
export function narrows (from: string, to: string): boolean | undefined {
  const a = shape(from)
  const b = shape(to)
  if (a.family === b.family && a.args.join() === b.args.join()) return false
  if (b.family === 'text') return false
  const [an, as = 0] = a.args
  const [bn, bs = 0] = b.args
  if ((b.family === 'varchar' || b.family === 'char') && (a.family === 'varchar' || a.family === 'char' || a.family === 'text')) {
    if (bn === undefined) return b.family === 'char' // char without length is char(1)
    if (an === undefined || a.family === 'text') return true
    return bn < an
  }
  const ar = INTEGER_RANK[a.family]
  const br = INTEGER_RANK[b.family]
  if (ar !== undefined && br !== undefined) return br < ar
  if (b.family === 'numeric') {
    if (bn === undefined) return !(ar !== undefined || a.family === 'numeric')
    if (ar !== undefined) return bn - bs < [0, 5, 10, 19][ar]!
    if (a.family === 'numeric') return an === undefined || bs < as || bn - bs < an - as
    return undefined
  }
  if (b.family === 'float8') return !(a.family === 'float4' || a.family === 'int2' || a.family === 'int4')
  if (b.family === 'float4') return a.family !== 'int2'
  return undefined
}
