/**
 * A `peakdb start` process for benchmarks that measure the daemon from outside (CLI start-up,
 * the web console): started through bin/peakdb.js as users run it, stopped with SIGTERM.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** bin/peakdb.js, as users run it (benchmarks run compiled, from dist/bench/). */
export const BIN = fileURLToPath(new URL('../../bin/peakdb.js', import.meta.url))

/** The environment benchmark processes run with (daemon logs kept to warnings). */
export const benchEnv = { ...process.env, PEAKDB_LOG: 'warn' }

/** A running daemon: its `started` event (with `api`, the local API's URL) and how to stop it. */
export interface BenchDaemon {
  readonly started: { readonly api: string, readonly deviceId: string }
  stop (): Promise<void>
}

/**
 * Starts `peakdb start --no-dht` on `dir` (with more `args`, inside network namespace `netns`
 * when given); resolves once its local API is up (at most 60 s).
 */
export async function startDaemon (dir: string, options: { args?: string[], netns?: string } = {}): Promise<BenchDaemon> {
  const argv = [BIN, 'start', '--json', '--no-dht', '--dir', dir, ...(options.args ?? [])]
  const child = options.netns === undefined
    ? spawn(process.execPath, argv, { env: benchEnv, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn('ip', ['netns', 'exec', options.netns, process.execPath, ...argv], { env: benchEnv, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const started = await new Promise<BenchDaemon['started']>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('the daemon did not start within 60 s')), 60_000)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const line = out.split('\n').find(l => l.includes('"event":"started"'))
      if (line !== undefined) {
        clearTimeout(timer)
        resolve(JSON.parse(line) as BenchDaemon['started'])
      }
    })
    void exited.then(() => reject(new Error('the daemon exited before it started')))
  })
  return {
    started,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}
