/**
 * CLI start-up benchmark: wall time of whole `peakdb` processes against a running daemon, next to
 * a bare `node -e 0` measured in the same rounds (each round runs every command once, so a
 * change in machine load shows in all of them alike).
 *
 *   node dist/bench/cli.js [runs]     # default 20 runs of each
 *
 * Prints one JSON object on stdout.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { percentile, round } from './stats.js'
import { BIN, benchEnv as env, startDaemon } from './daemon.js'

const RUNS = Number(process.argv[2] ?? 20)
const GOALS = { versionMs: 150, commandMs: 250, vsBareNode: 2 }

/** Runs one process to completion; returns its wall time in ms. */
function timed (args: string[]): number {
  const t = performance.now()
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  const ms = performance.now() - t
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited with ${String(r.status)}: ${r.stderr}`)
  return ms
}

function stats (times: number[]): { p50Ms: number, p95Ms: number, minMs: number } {
  return { p50Ms: round(percentile(times, 50), 1), p95Ms: round(percentile(times, 95), 1), minMs: round(Math.min(...times), 1) }
}

const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-cli-'))
try {
  const daemon = await startDaemon(dir)
  try {
    const id = (JSON.parse(spawnSync(process.execPath, [BIN, 'put', 'notes', '{"_id":"n0","title":"first"}', '--json', '--dir', dir], { env, encoding: 'utf8' }).stdout) as { id: string }).id
    const commands: Record<string, string[]> = {
      bareNode: ['-e', '0'],
      version: [BIN, '--version'],
      put: [BIN, 'put', 'notes', '{"title":"from the bench"}', '--dir', dir],
      get: [BIN, 'get', 'notes', id, '--dir', dir],
      status: [BIN, 'status', '--dir', dir]
    }
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map(k => [k, []]))
    for (const args of Object.values(commands)) timed(args) // warm the file cache
    for (let i = 0; i < RUNS; i++) {
      for (const [name, args] of Object.entries(commands)) times[name]?.push(timed(args))
    }
    const s = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)])) as Record<keyof typeof commands, ReturnType<typeof stats>>
    const bare = s.bareNode?.p50Ms ?? Number.NaN
    const worst = Math.max(s.put?.p50Ms ?? 0, s.get?.p50Ms ?? 0, s.status?.p50Ms ?? 0)
    const result = {
      runs: RUNS,
      wall: s,
      ratios: {
        versionVsBareNode: round((s.version?.p50Ms ?? 0) / bare, 2),
        slowestCommandVsBareNode: round(worst / bare, 2)
      },
      goals: GOALS,
      met: {
        version: (s.version?.p50Ms ?? Infinity) <= GOALS.versionMs,
        commands: worst <= GOALS.commandMs,
        vsBareNode: Math.max(s.version?.p50Ms ?? 0, worst) <= GOALS.vsBareNode * bare
      }
    }
    process.stdout.write(JSON.stringify(result) + '\n')
  } finally {
    await daemon.stop()
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
