/**
 * A small leveled logger for the daemon: lines on stderr, `PEAKDB_LOG=debug|info|warn|error|silent`
 * (default info). Callers never pass secrets; values are printed as given.
 */

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const
export type LogLevel = keyof typeof LEVELS

/** A component's logger. */
export interface Logger {
  debug (message: string, fields?: Record<string, unknown>): void
  info (message: string, fields?: Record<string, unknown>): void
  warn (message: string, fields?: Record<string, unknown>): void
  error (message: string, fields?: Record<string, unknown>): void
}

function threshold (): number {
  const env = (process.env.PEAKDB_LOG ?? 'info').toLowerCase()
  return env in LEVELS ? LEVELS[env as LogLevel] : LEVELS.info
}

function format (fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return ''
  return ' ' + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
}

/** A logger whose lines are prefixed by `component`. */
export function createLogger (component: string): Logger {
  const write = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < threshold()) return
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${component}: ${message}${format(fields)}\n`)
  }
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f)
  }
}
