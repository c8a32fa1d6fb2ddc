/**
 * What text of a document is indexed, and how it is cut into chunks for the embedder. Pure.
 *
 * The sentence encoder works best on sentences and short paragraphs, and costs time in
 * proportion to length: text is split on sentence ends into chunks of at most
 * {@link MAX_CHUNK_CHARS} characters (a longer sentence is cut at spaces). A document's vector
 * score is its best chunk's.
 */
import type { JsonObject, JsonValue } from '../../crdt/index.js'

export const MAX_CHUNK_CHARS = 500
/** At most this many chunks are embedded per document (the full text still goes to keyword search). */
export const MAX_CHUNKS = 64
/** Keyword search indexes at most this many characters per document. */
export const MAX_TEXT_CHARS = 200_000

function strings (v: JsonValue | undefined): string[] {
  if (typeof v === 'string') return [v]
  if (Array.isArray(v)) return v.flatMap(x => (typeof x === 'string' ? [x] : []))
  return []
}

function at (doc: JsonObject, path: string): JsonValue | undefined {
  let v: JsonValue | undefined = doc
  for (const s of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
    v = (v as JsonObject)[s]
  }
  return v
}

/**
 * The text of a document: the given fields' string values (strings and lists of strings), or,
 * with 'auto', every top-level string field, one per line.
 */
export function documentText (doc: JsonObject, fields: 'auto' | readonly string[]): string {
  const parts = fields === 'auto'
    ? Object.keys(doc).filter(k => k !== '_id').flatMap(k => strings(doc[k]))
    : fields.flatMap(f => strings(at(doc, f)))
  return parts.map(p => p.trim()).filter(p => p.length > 0).join('\n').slice(0, MAX_TEXT_CHARS)
}

/** Splits text into chunks of whole sentences, each at most {@link MAX_CHUNK_CHARS} characters. */
export function chunkText (text: string, max = MAX_CHUNK_CHARS): string[] {
  const sentences = text.split(/(?<=[.!?])\s+|\n+/).map(s => s.trim()).filter(s => s.length > 0)
  const chunks: string[] = []
  let current = ''
  const push = (): void => {
    if (current.length > 0) chunks.push(current)
    current = ''
  }
  for (const sentence of sentences) {
    if (sentence.length > max) {
      push()
      let rest = sentence
      while (rest.length > max) {
        const cut = rest.lastIndexOf(' ', max)
        const at = cut > max / 2 ? cut : max
        chunks.push(rest.slice(0, at).trim())
        rest = rest.slice(at).trim()
      }
      current = rest
      continue
    }
    if (current.length + 1 + sentence.length > max) push()
    current = current.length === 0 ? sentence : `${current} ${sentence}`
  }
  push()
  return chunks.slice(0, MAX_CHUNKS)
}

// Function words that match almost every English text; they are left out of keyword queries
// (unless a query has nothing else), so that "a kitten is on the rug" does not match every note
// that contains "is" and "the".
const STOP_WORDS = new Set(('a about above after again against all am an and any are as at be because been before being below between both but by ' +
  'can could did do does doing down during each few for from further had has have having he her here hers herself him himself his how i if in ' +
  'into is it its itself just me more most my myself no nor not now of off on once only or other our ours ourselves out over own same she ' +
  'should so some such than that the their theirs them themselves then there these they this those through to too under until up very was ' +
  'we were what when where which while who whom why will with would you your yours yourself yourselves').split(' '))

/**
 * English contraction endings ("Maya's", "don't", "we'll"): the tokenizer makes words of them
 * ("s", "t", "ll") that match a large share of any English text and say nothing.
 */
const CONTRACTION = /(?<=\p{L})['’](?:s|t|d|ll|re|ve|m)(?!\p{L})/gu

/** The full-text terms of free text: its words (without function words and contraction endings), each quoted. */
export function ftsTerms (text: string): string[] {
  const all = [...new Set(text.toLowerCase().replace(CONTRACTION, ' ').match(/[\p{L}\p{N}]+/gu) ?? [])]
  const content = all.filter(w => !STOP_WORDS.has(w))
  return (content.length > 0 ? content : all).slice(0, 32)
}
