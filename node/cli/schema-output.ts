/**
 * The human form of `peakdb schema`: per table its columns (type, nullability, default),
 * primary key and indexes; PeakDB's own tables summed up in one line per schema unless asked for.
 */
import type { IndexDescription, SchemaDescription, TableDescription } from '../../storage/introspect.js'

function indexLine (i: IndexDescription): string {
  const keys = i.keys.map(k => 'column' in k ? k.column : k.expression).join(', ')
  const flags = [i.primary ? 'primary key' : i.unique ? 'unique' : '', i.method !== undefined && i.method !== 'btree' ? i.method : '', i.partial ? 'partial' : ''].filter(f => f !== '')
  return `    ${i.name} (${keys})${flags.length > 0 ? `  ${flags.join(', ')}` : ''}`
}

function tableBlock (t: TableDescription): string {
  const nameWidth = Math.max(0, ...t.columns.map(c => c.name.length))
  const typeWidth = Math.max(0, ...t.columns.map(c => c.type.length))
  const lines = [`${t.schema}.${t.name} (${t.kind}${t.peakdb ? ', PeakDB' : ''})`]
  for (const c of t.columns) {
    const extra = [
      c.default !== null ? `default ${c.default}` : '',
      c.generated ? 'generated' : '',
      c.vectorDims !== undefined ? `${c.vectorDims} dimensions` : ''
    ].filter(e => e !== '')
    lines.push(`  ${c.name.padEnd(nameWidth)}  ${(c.type === '' ? '-' : c.type).padEnd(typeWidth)}  ${c.nullable ? 'null    ' : 'not null'}${extra.length > 0 ? `  ${extra.join(', ')}` : ''}`.trimEnd())
  }
  if (t.columns.length === 0) lines.push('  (columns unknown)')
  if (t.primaryKey.length > 0) lines.push(`  primary key: ${t.primaryKey.join(', ')}`)
  if (t.indexes.length > 0) lines.push('  indexes:', ...t.indexes.map(indexLine))
  return lines.join('\n')
}

/** Readable text of a schema description; PeakDB's own tables in full only with `all`. */
export function schemaText (d: SchemaDescription, all: boolean): string {
  const shown = d.tables.filter(t => all || !t.peakdb)
  const blocks = shown.map(tableBlock)
  if (!all) {
    const hidden = new Map<string, string[]>()
    for (const t of d.tables.filter(t => t.peakdb)) hidden.set(t.schema, [...(hidden.get(t.schema) ?? []), t.name])
    for (const [schema, names] of hidden) blocks.push(`PeakDB's own tables in ${schema} (--all shows them): ${names.join(', ')}`)
  }
  if (shown.length === 0 && blocks.length === 0) return `(no tables or views in ${d.location})`
  return blocks.join('\n\n')
}
