/**
 * What the DataRouter adds to each operation: the same calls on a SQLite provider directly and
 * through a router that routes another collection elsewhere (so every call resolves a route),
 * in one process, alternating rounds. Prints one JSON line.
 *
 *   node dist/bench/router.js [ops]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stampOf } from '../crdt/index.js'
import { DataRouter, SqliteProvider, normaliseQuery, type StorageProvider } from '../storage/index.js'
import { percentile, round } from './stats.js'

const OPS = Number(process.argv[2] ?? 50_000)
const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-router-'))
const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

try {
  const direct = await SqliteProvider.open({ path: join(dir, 'direct.sqlite'), readers: 0 })
  const primary = await SqliteProvider.open({ path: join(dir, 'primary.sqlite'), readers: 0 })
  const other = await SqliteProvider.open({ path: join(dir, 'other.sqlite'), readers: 0 })
  const router = new DataRouter(primary, new Map([['other', other]]), { 'elsewhere.*': 'other', archive: 'other' })
  for (const s of [direct, router] as StorageProvider[]) {
    await s.commit(Array.from({ length: 1000 }, (_, i) => ({
      cid: Uint8Array.from([1, 0x71, 0x12, 0x20, ...Buffer.alloc(28), i >> 8, i & 255, 0, 0]),
      author: A,
      seq: i + 1,
      bytes: Buffer.alloc(64),
      stamp: stampOf({ ms: i + 1, c: 0 }, A),
      ops: [{ t: 'put', c: 'notes', id: `d${i}`, f: { i } }] as never,
      control: []
    })))
  }
  const query = normaliseQuery({ where: { _id: 'd7' } })
  const ops: Record<string, (s: StorageProvider, i: number) => Promise<unknown>> = {
    getDocument: async (s, i) => await s.getDocument('notes', `d${i % 1000}`),
    find: async (s) => await s.find('notes', query),
    getMeta: async (s) => await s.getMeta('device')
  }
  const out: Record<string, unknown> = {}
  for (const [name, op] of Object.entries(ops)) {
    const perOp: Record<'direct' | 'router', number[]> = { direct: [], router: [] }
    for (let round = 0; round < 7; round++) {
      for (const [label, s] of [['direct', direct], ['router', router]] as const) {
        const started = process.hrtime.bigint()
        for (let i = 0; i < OPS; i++) await op(s, i)
        perOp[label].push(Number(process.hrtime.bigint() - started) / 1000 / OPS)
      }
    }
    const d = percentile(perOp.direct, 50)
    const r = percentile(perOp.router, 50)
    out[name] = { directUs: round(d, 3), routerUs: round(r, 3), overheadUs: round(r - d, 3) }
  }
  for (const s of [direct, router]) await s.close()
  process.stdout.write(JSON.stringify({ ops: OPS, rounds: 7, ...out }) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
