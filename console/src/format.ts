/**
 * How the console writes values for people: times, durations, counts and document previews.
 * Pure functions.
 */

/** A date and time in the reader's locale, or `—` for nothing or an invalid date. */
export function formatTime (value: string | number | undefined): string {
  if (value === undefined) return '—'
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString()
}

/** How long ago `value` was, roughly (`just now`, `5 min ago`, `3 h ago`, `2 d ago`). */
export function formatAgo (value: string | number | undefined, now = Date.now()): string {
  if (value === undefined) return 'never'
  const ms = now - new Date(value).getTime()
  if (Number.isNaN(ms)) return String(value)
  if (ms < 60_000) return 'just now'
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)} h ago`
  return `${Math.floor(ms / 86_400_000)} d ago`
}

/** Seconds as `mm:ss` (`"expired"` at zero or below). */
export function formatCountdown (seconds: number): string {
  if (seconds <= 0) return 'expired'
  const s = Math.ceil(seconds)
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
}

/** A count with the locale's digit grouping. */
export function formatCount (n: number): string {
  return n.toLocaleString()
}

/** Milliseconds, rounded sensibly (`0.42 ms`, `12 ms`, `1.5 s`). */
export function formatMs (ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`
  if (ms < 1000) return `${Math.round(ms)} ms`
  return `${(ms / 1000).toFixed(1)} s`
}

/** A score with three decimals. */
export function formatScore (score: number): string {
  return score.toFixed(3)
}

/** A long id cut to its start and end (`12D3Koo…x7Qa`); the full id belongs in a title. */
export function shortId (id: string, keep = 8): string {
  return id.length <= keep * 2 + 1 ? id : `${id.slice(0, keep)}…${id.slice(-4)}`
}

/** `text` cut to `max` characters on one line. */
export function clip (text: string, max: number): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`
}

/** Compact one-line JSON of a document's fields (its `_id` left out), cut to `max` characters. */
export function previewDoc (doc: Readonly<Record<string, unknown>>, max = 160): string {
  const { _id: _ignored, ...fields } = doc
  return clip(JSON.stringify(fields), max)
}
