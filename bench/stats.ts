/**
 * Small helpers for benchmark statistics.
 */

/** The p-th percentile (0..100) of a list of numbers (nearest rank). */
export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** Rounds to `digits` decimals. */
export function round (n: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

/** Peak resident set size of this process so far, in MB. */
export function peakRssMb (): number {
  return round(process.resourceUsage().maxRSS / 1024, 1)
}

/**
 * The raw better-sqlite3 baseline of the write benches: `n` autocommit inserts of JSON bodies
 * into a WAL file at `path` (synchronous=NORMAL, as PeakDB runs), in documents per second.
 */
export async function rawAutocommitPerSec (path: string, n: number, doc: (i: number) => Record<string, unknown>): Promise<number> {
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(path)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec('CREATE TABLE docs (id TEXT PRIMARY KEY, body BLOB)')
    const insert = db.prepare('INSERT INTO docs (id, body) VALUES (?, ?)')
    const t = performance.now()
    for (let i = 0; i < n; i++) insert.run(`r${i}`, Buffer.from(JSON.stringify(doc(i))))
    return n / (performance.now() - t) * 1000
  } finally {
    db.close()
  }
}
