/**
 * CLI output: human text on stdout, or JSON with `--json`; errors as one line on stderr (or a
 * JSON object with `--json`) and a non-zero exit code.
 */

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const

/** Prints a result: JSON when asked, else the human form. */
export function emit (json: boolean, result: unknown, human: () => string): void {
  const text = json ? JSON.stringify(result) : human()
  if (text.length > 0) process.stdout.write(text.endsWith('\n') ? text : text + '\n')
}

/** Tells the person at the terminal something that is not the result (on stderr, so pipes get only results). */
export function note (text: string): void {
  process.stderr.write(`peakdb: ${text}\n`)
}

/** Prints an error and returns the exit code to use. */
export function reportError (json: boolean, err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err))
  const code = (e as { code?: unknown }).code
  if (json) {
    process.stderr.write(JSON.stringify({ error: { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) } }) + '\n')
  } else {
    process.stderr.write(`peakdb: ${e.name === 'Error' ? '' : `${e.name}: `}${e.message}\n`)
    if (process.env.PEAKDB_LOG === 'debug' && e.stack !== undefined) process.stderr.write(e.stack + '\n')
  }
  return EXIT.error
}

/** Aligned `key: value` lines. */
export function table (rows: Array<[string, unknown]>): string {
  const width = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${(k + ':').padEnd(width + 2)}${typeof v === 'string' ? v : JSON.stringify(v)}`).join('\n')
}
