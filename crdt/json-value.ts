/**
 * JSON values as stored in document fields: what counts as one, and a validator that reports the
 * first problem with its path (callers wrap it into their own typed error).
 */

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** A JSON object (a document's fields). */
export type JsonObject = { [key: string]: JsonValue }

/** Deepest nesting accepted in a field value. */
export const MAX_JSON_DEPTH = 32

/** Longest field name, in characters. */
export const MAX_FIELD_NAME = 256

function describe (v: unknown): string {
  if (v === undefined) return 'undefined'
  if (typeof v === 'number') return String(v)
  if (typeof v === 'object' && v !== null) return v.constructor?.name ?? 'object'
  return typeof v
}

/**
 * Returns a description of the first reason `value` is not a plain JSON value (with its path), or
 * undefined when it is one.
 */
export function jsonProblem (value: unknown, path = '$', depth = 0): string | undefined {
  if (depth > MAX_JSON_DEPTH) return `${path}: nested deeper than ${MAX_JSON_DEPTH} levels`
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${path}: ${String(value)} is not a JSON number`
    case 'object': {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const p = jsonProblem(value[i], `${path}[${i}]`, depth + 1)
          if (p !== undefined) return p
        }
        return undefined
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return `${path}: ${describe(value)} is not a plain JSON object`
      for (const [k, v] of Object.entries(value)) {
        if (k.length > MAX_FIELD_NAME) return `${path}: key longer than ${MAX_FIELD_NAME} characters`
        if (k === '__proto__') return `${path}: key "__proto__" is not allowed`
        const p = jsonProblem(v, `${path}.${k}`, depth + 1)
        if (p !== undefined) return p
      }
      return undefined
    }
    default:
      return `${path}: ${describe(value)} is not a JSON value`
  }
}

/** True when `value` is a plain object (not null, not an array). */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
