/**
 * Per-field last-writer-wins documents, as pure functions over immutable state.
 *
 * A document's state is: `x`, the stamp of the latest full write (`put`); `d`, the stamp of the
 * latest delete; and per field the latest (stamp, value). A put replaces the document: fields
 * older than it are gone. A patch sets some fields. A delete hides the document until a later
 * put. Hence a field is visible when the document exists (x > d, or patches alone and no delete)
 * and its stamp is at least max(x, d); fields older than that can never be visible again and are
 * pruned.
 *
 * Stamps order by hybrid logical clock, then author. Merge is a per-component maximum, hence
 * commutative, associative and idempotent (property-tested).
 */
import { hlcToString, type Hlc } from './hlc.js'
import type { JsonObject, JsonValue } from './json-value.js'

/** A totally ordered write stamp: fixed-width HLC followed by the author's DeviceId. */
export type Stamp = string & { readonly __brand: 'Stamp' }

/** One field: the stamp of the write that set it and the value. */
export interface FieldState {
  readonly s: Stamp
  readonly v: JsonValue
}

/** The mergeable state of one document. */
export interface DocState {
  /** Stamp of the latest put (full replace), if any. */
  readonly x?: Stamp
  /** Stamp of the latest delete, if any. */
  readonly d?: Stamp
  /** Fields that may be visible now or later. */
  readonly f: Readonly<Record<string, FieldState>>
}

/** The state of a document nobody has written. */
export const EMPTY_DOC: DocState = Object.freeze({ f: Object.freeze({}) })

/** The stamp of a write by `author` at `clock`. */
export function stampOf (clock: Hlc, author: string): Stamp {
  return (hlcToString(clock) + author) as Stamp
}

function maxStamp (a: Stamp | undefined, b: Stamp | undefined): Stamp | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return a >= b ? a : b
}

// Deterministic winner for two writes with the same stamp (only a malformed entry can produce
// that): the value with the greater JSON text.
function pickField (a: FieldState | undefined, b: FieldState | undefined): FieldState | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  if (a.s !== b.s) return a.s > b.s ? a : b
  return JSON.stringify(a.v) >= JSON.stringify(b.v) ? a : b
}

/** The stamp below which fields are dead. */
function floor (x: Stamp | undefined, d: Stamp | undefined): Stamp | undefined {
  return maxStamp(x, d)
}

function prune (x: Stamp | undefined, d: Stamp | undefined, f: Record<string, FieldState>): DocState {
  const k = floor(x, d)
  const kept: Record<string, FieldState> = {}
  for (const name of Object.keys(f)) {
    const field = f[name] as FieldState
    if (k === undefined || field.s >= k) kept[name] = field
  }
  const out: { x?: Stamp, d?: Stamp, f: Record<string, FieldState> } = { f: kept }
  if (x !== undefined) out.x = x
  if (d !== undefined) out.d = d
  return out
}

/** Applies a full write: the document becomes exactly `fields` (unless newer writes exist). */
export function applyPut (state: DocState, fields: JsonObject, stamp: Stamp): DocState {
  const f: Record<string, FieldState> = { ...state.f }
  for (const name of Object.keys(fields)) {
    const w = pickField(f[name], { s: stamp, v: fields[name] as JsonValue })
    if (w !== undefined) f[name] = w
  }
  return prune(maxStamp(state.x, stamp), state.d, f)
}

/** Applies a partial write: sets the given fields, leaves the others. */
export function applyPatch (state: DocState, fields: JsonObject, stamp: Stamp): DocState {
  const f: Record<string, FieldState> = { ...state.f }
  for (const name of Object.keys(fields)) {
    const w = pickField(f[name], { s: stamp, v: fields[name] as JsonValue })
    if (w !== undefined) f[name] = w
  }
  return prune(state.x, state.d, f)
}

/** Applies a delete. */
export function applyDelete (state: DocState, stamp: Stamp): DocState {
  return prune(state.x, maxStamp(state.d, stamp), { ...state.f })
}

/** Merges two states of the same document. */
export function mergeDocStates (a: DocState, b: DocState): DocState {
  const f: Record<string, FieldState> = { ...a.f }
  for (const name of Object.keys(b.f)) {
    const w = pickField(f[name], b.f[name])
    if (w !== undefined) f[name] = w
  }
  return prune(maxStamp(a.x, b.x), maxStamp(a.d, b.d), f)
}

/**
 * True when the document exists: its latest put is newer than its latest delete, or, for a
 * document never put nor deleted, some field was patched in (an upsert: concurrent first
 * patches on several devices keep all their fields, where concurrent first puts keep one).
 */
export function docExists (state: DocState): boolean {
  if (state.x === undefined) return state.d === undefined && Object.keys(state.f).length > 0
  return state.d === undefined || state.x > state.d
}

/** The visible fields of a document, or null when it does not exist. */
export function visibleFields (state: DocState): JsonObject | null {
  if (!docExists(state)) return null
  const out: JsonObject = {}
  for (const name of Object.keys(state.f)) out[name] = (state.f[name] as FieldState).v
  return out
}

/** Canonical form for equality checks in tests and verification (sorted keys). */
export function canonicalDocState (state: DocState): string {
  const names = Object.keys(state.f).sort()
  return JSON.stringify([state.x ?? null, state.d ?? null, names.map(n => [n, state.f[n]?.s, state.f[n]?.v])])
}

/**
 * Compact storage form: the visible body (a JSON object or null) plus `meta`, which holds the
 * stamps (a field's stamp only where it differs from `x`) and the fields that are kept but not
 * visible. {@link docStateFromRow} inverts it.
 */
export interface DocRow {
  readonly body: JsonObject | null
  readonly meta: { x?: Stamp, d?: Stamp, s?: Record<string, Stamp>, h?: Record<string, FieldState> }
}

/** Splits a state into its storage form. */
export function docStateToRow (state: DocState): DocRow {
  const exists = docExists(state)
  const body: JsonObject | null = exists ? {} : null
  const meta: { x?: Stamp, d?: Stamp, s?: Record<string, Stamp>, h?: Record<string, FieldState> } = {}
  if (state.x !== undefined) meta.x = state.x
  if (state.d !== undefined) meta.d = state.d
  for (const name of Object.keys(state.f)) {
    const field = state.f[name] as FieldState
    if (body !== null) {
      body[name] = field.v
      if (field.s !== state.x) (meta.s ??= {})[name] = field.s
    } else {
      (meta.h ??= {})[name] = field
    }
  }
  return { body, meta }
}

/** Rebuilds a state from its storage form. */
export function docStateFromRow (row: DocRow): DocState {
  const { body, meta } = row
  const f: Record<string, FieldState> = {}
  if (body !== null) {
    for (const name of Object.keys(body)) {
      const stamp = meta.s?.[name] ?? meta.x
      if (stamp !== undefined) f[name] = { s: stamp, v: body[name] as JsonValue }
    }
  }
  if (meta.h !== undefined) for (const name of Object.keys(meta.h)) f[name] = meta.h[name] as FieldState
  const out: { x?: Stamp, d?: Stamp, f: Record<string, FieldState> } = { f }
  if (meta.x !== undefined) out.x = meta.x
  if (meta.d !== undefined) out.d = meta.d
  return out
}
