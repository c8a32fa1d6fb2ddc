/**
 * Document bodies as the file provider takes them: plain JSON objects whose strings are
 * well-formed Unicode (they are stored as MessagePack, whose strings are UTF-8: a lone surrogate
 * would come back as U+FFFD), and equality as the SQLite provider sees it (equal JSON text).
 */
import { isPlainObject, jsonProblem } from '../../crdt/index.js'
import type { JsonValue } from '../types.js'

function wellFormed (s: string): boolean {
  return (s as string & { isWellFormed: () => boolean }).isWellFormed()
}

/** The first string (value or key) that is not well-formed Unicode, with its path. */
function lonelySurrogate (v: JsonValue, path: string): string | undefined {
  if (typeof v === 'string') return wellFormed(v) ? undefined : path
  if (v === null || typeof v !== 'object') return undefined
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = lonelySurrogate(v[i] as JsonValue, `${path}[${i}]`)
      if (p !== undefined) return p
    }
    return undefined
  }
  for (const k in v) {
    if (!wellFormed(k)) return `${path} (a key)`
    const p = lonelySurrogate(v[k] as JsonValue, `${path}.${k}`)
    if (p !== undefined) return p
  }
  return undefined
}

/** Why a body cannot be stored, or undefined when it can. */
export function bodyProblem (body: unknown): string | undefined {
  if (!isPlainObject(body)) return `body expected a JSON object or null, got ${Array.isArray(body) ? 'an array' : typeof body}`
  const problem = jsonProblem(body)
  if (problem !== undefined) return problem
  const at = lonelySurrogate(body as JsonValue, '$')
  return at === undefined ? undefined : `${at}: a string with a lone surrogate is not well-formed Unicode`
}

/** Whether two JSON values have the same JSON text (keys in the same order). */
export function sameJson (a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i] as JsonValue, b[i] as JsonValue)) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i] as string
    if (k !== kb[i] || !sameJson(a[k] as JsonValue, b[k] as JsonValue)) return false
  }
  return true
}
