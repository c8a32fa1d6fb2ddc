/**
 * File provider benchmark, next to raw `lmdb` in the same process and run. Workload: N documents
 * `{ _id, n, body }` with 1 KiB bodies in one device-local collection, written in batches of 1000
 * (one transaction each), then read back by id in a scattered order. Each measure takes the
 * median of three rounds that alternate raw and provider, so that a busy moment of the machine
 * does not fall on one side only.
 *
 *   node --import tsx bench/file-provider.ts [N]
 *
 * Prints one JSON object on stdout.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open, type Database, type RootDatabase } from 'lmdb'
import type { JsonObject } from '../crdt/index.js'
import { normaliseQuery, parseFieldPath } from '../storage/index.js'
import { FileProvider } from '../storage/file/file-provider.js'
import { percentile, round } from './stats.js'

const N = Number(process.argv[2] ?? 5000)
const BATCH = 1000
const ROUNDS = 3
const BODY = 'x'.repeat(1024)
const C = '~bench'
const doc = (i: number): JsonObject => ({ _id: `d${i}`, n: i, body: BODY })
const docs = Array.from({ length: N }, (_, i) => doc(i))
// a fixed scattered order of ids, the same for every engine
const readOrder = Array.from({ length: N }, (_, i) => `d${(i * 7919) % N}`)

function median (values: readonly number[]): number {
  return percentile(values, 50)
}

/** Docs per second of writing every document in batches. */
async function putRate (write: (batch: JsonObject[]) => Promise<void>): Promise<number> {
  const t = performance.now()
  for (let i = 0; i < N; i += BATCH) await write(docs.slice(i, i + BATCH))
  return N / (performance.now() - t) * 1000
}

/** p50 of single reads by id, in ms. */
async function getP50 (read: (id: string) => unknown): Promise<number> {
  const times: number[] = []
  for (const id of readOrder) {
    const t = performance.now()
    await read(id)
    times.push(performance.now() - t)
  }
  return percentile(times, 50)
}

/**
 * What a round measures: 'durable' (both sides flush every commit, the default), 'unflushed'
 * (neither flushes: the CPU cost alone), 'policy' (durable, and the provider's collection has a
 * TTL, a byte budget, so reads are recorded for LRU, and an index on `n`).
 */
type Variant = 'durable' | 'unflushed' | 'policy'

interface Engines { raw: Database<JsonObject, [string, string]>, rawRoot: RootDatabase, file: FileProvider }

async function openEngines (dir: string, name: string, variant: Variant): Promise<Engines> {
  const unflushed = variant === 'unflushed'
  const rawRoot = open({ path: join(dir, `raw-${name}`), noSubdir: false, maxDbs: 2, noSync: unflushed })
  const raw = rawRoot.openDB<JsonObject, [string, string]>('docs', {})
  const file = await FileProvider.open({ path: join(dir, `file-${name}`), sweepIntervalMs: 0, durability: unflushed ? 'none' : 'full' })
  if (variant === 'policy') {
    await file.setCollectionPolicy(C, { ttlMs: 3600_000, maxBytes: 1 << 30 })
    await file.ensureIndex(C, parseFieldPath('n'))
  }
  return { raw, rawRoot, file }
}

/** Runs both measures, in the order given; returns [raw, file]. */
async function both (raw: () => Promise<number>, file: () => Promise<number>, rawFirst: boolean): Promise<[number, number]> {
  if (rawFirst) {
    const r = await raw()
    return [r, await file()]
  }
  const f = await file()
  return [await raw(), f]
}

interface Measures { rawPutRate: number, filePutRate: number, rawGetP50: number, fileGetP50: number }

/** One round: batched writes, then reads, on both sides; raw goes first in every other round. */
async function round1 (dir: string, variant: Variant, r: number): Promise<Measures> {
  const e = await openEngines(dir, `${variant}-${r}`, variant)
  try {
    const rawPut = (): Promise<number> => putRate(async batch => {
      await e.rawRoot.transaction(() => { for (const d of batch) e.raw.putSync([C, d._id as string], d) })
    })
    const filePut = (): Promise<number> => putRate(async batch => {
      await e.file.writeLocal(C, batch.map(d => ({ id: d._id as string, body: d })))
    })
    const rawGet = (): Promise<number> => getP50(id => e.raw.get([C, id]))
    const fileGet = (): Promise<number> => getP50(async id => await e.file.getDocument(C, id))
    const rawFirst = r % 2 === 0
    const [rawPutRate, filePutRate] = await both(rawPut, filePut, rawFirst)
    const [rawGetP50, fileGetP50] = await both(rawGet, fileGet, rawFirst)
    return { rawPutRate, filePutRate, rawGetP50, fileGetP50 }
  } finally {
    await e.file.close()
    await e.rawRoot.close()
  }
}

async function measure (dir: string, variant: Variant): Promise<Measures> {
  const rounds: Measures[] = []
  for (let r = 0; r < ROUNDS; r++) rounds.push(await round1(dir, variant, r))
  const med = (k: keyof Measures): number => median(rounds.map(x => x[k]))
  return { rawPutRate: med('rawPutRate'), filePutRate: med('filePutRate'), rawGetP50: med('rawGetP50'), fileGetP50: med('fileGetP50') }
}

/** p50 of a find returning a tenth of the documents, without and with an index on `n`. */
async function findP50 (dir: string): Promise<{ scan: number, indexed: number, returned: number }> {
  const file = await FileProvider.open({ path: join(dir, 'find'), sweepIntervalMs: 0 })
  try {
    for (let i = 0; i < N; i += BATCH) await file.writeLocal(C, docs.slice(i, i + BATCH).map(d => ({ id: d._id as string, body: d })))
    const q = normaliseQuery({ where: { n: { lt: Math.floor(N / 10) } } })
    const runs = async (): Promise<number> => {
      const times: number[] = []
      for (let i = 0; i < 30; i++) {
        const t = performance.now()
        await file.find(C, q)
        times.push(performance.now() - t)
      }
      return median(times)
    }
    const scan = await runs()
    await file.ensureIndex(C, parseFieldPath('n'))
    const indexed = await runs()
    return { scan, indexed, returned: (await file.find(C, q)).length }
  } finally {
    await file.close()
  }
}

const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-file-'))
try {
  process.stderr.write(`bench: file provider next to raw lmdb, N=${N}\n`)
  const durable = await measure(dir, 'durable')
  const unflushed = await measure(dir, 'unflushed')
  const policy = await measure(dir, 'policy')
  const find = await findP50(dir)
  const side = (m: Measures, which: 'raw' | 'file'): { putDocsPerSec: number, getP50Ms: number } =>
    ({ putDocsPerSec: round(which === 'raw' ? m.rawPutRate : m.filePutRate, 0), getP50Ms: round(which === 'raw' ? m.rawGetP50 : m.fileGetP50, 4) })
  const result = {
    N,
    batch: BATCH,
    raw: {
      engine: 'raw lmdb (key [collection, id], msgpack values, one transaction per batch)',
      ...side(durable, 'raw'),
      unflushed: side(unflushed, 'raw')
    },
    file: {
      engine: 'PeakDB file provider (writeLocal per batch, getDocument)',
      ...side(durable, 'file'),
      unflushed: side(unflushed, 'file'),
      withPolicyAndIndex: { note: 'a TTL, a byte budget (reads recorded for LRU) and an index on n', ...side(policy, 'file') },
      findReturned: find.returned,
      findScanP50Ms: round(find.scan, 3),
      findIndexedP50Ms: round(find.indexed, 3)
    },
    ratios: {
      getP50VsRaw: round(durable.fileGetP50 / durable.rawGetP50, 2),
      putVsRaw: round(durable.filePutRate / durable.rawPutRate, 2),
      putUnflushedVsRaw: round(unflushed.filePutRate / unflushed.rawPutRate, 2),
      putWithPolicyVsRaw: round(policy.filePutRate / policy.rawPutRate, 2),
      getWithPolicyVsRaw: round(policy.fileGetP50 / policy.rawGetP50, 2)
    }
  }
  process.stdout.write(JSON.stringify(result) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
