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
