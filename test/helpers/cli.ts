/**
 * Runs the built CLI (`bin/peakdb.js`, as users run it) in child processes, with bounded waits.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { withTimeout } from './wait-for.js'

export const BIN = fileURLToPath(new URL('../../bin/peakdb.js', import.meta.url))

/** Node with `args`, inside network namespace `netns` when given (`ip netns exec` execs in place: same pid). */
function inNetns (netns: string | undefined, args: string[]): [string, string[]] {
  return netns === undefined ? [process.execPath, args] : ['ip', ['netns', 'exec', netns, process.execPath, ...args]]
}

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs `peakdb <args>` to completion (at most `timeoutMs`). */
export async function runCli (args: string[], options: { input?: string, env?: Record<string, string>, timeoutMs?: number, netns?: string } = {}): Promise<CliResult> {
  const [command, argv] = inNetns(options.netns, [BIN, ...args])
  const child = spawn(command, argv, { env: { ...process.env, PEAKDB_LOG: 'warn', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  child.stdin.end(options.input ?? '')
  const done = new Promise<CliResult>(resolve => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  try {
    return await withTimeout(done, options.timeoutMs ?? 30_000, `peakdb ${args.join(' ')}`)
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
}

/** A `peakdb start` process. */
export interface Daemon {
  readonly child: ChildProcess
  readonly started: Record<string, unknown>
  output (): string
  /** Sends a signal and waits for the exit code. */
  stop (signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `peakdb start --json <args>` and waits for its `started` event line. */
export async function startDaemon (args: string[], options: { env?: Record<string, string>, timeoutMs?: number, netns?: string } = {}): Promise<Daemon> {
  const [command, argv] = inNetns(options.netns, [BIN, 'start', '--json', ...args])
  const child = spawn(command, argv, { env: { ...process.env, PEAKDB_LOG: 'warn', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const started = await withTimeout(new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      for (const line of out.split('\n')) {
        if (line.startsWith('{') && line.includes('"event":"started"')) resolve(JSON.parse(line) as Record<string, unknown>)
      }
    })
    void exited.then(code => reject(new Error(`daemon exited with ${String(code)} before starting: ${err}`)))
  }), options.timeoutMs ?? 30_000, 'daemon to start').catch(e => { child.kill('SIGKILL'); throw e })
  return {
    child,
    started,
    output: () => out + err,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null) return child.exitCode
      child.kill(signal)
      try {
        return await withTimeout(exited, 15_000, 'daemon to stop')
      } catch (e) {
        child.kill('SIGKILL')
        throw e
      }
    }
  }
}
