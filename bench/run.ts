/**
 * `npm run bench`: runs every benchmark, each engine in its own process (so peak RSS is its
 * own), and prints one JSON document; a copy is written to bench/out/.
 *
 *   npm run bench            # N = 5000 documents, 100,000 vectors, 100,000 documents to scan
 *   BENCH_N=20000 BENCH_VECTORS=20000 BENCH_SWARM_DOCS=2000 BENCH_SCAN_DOCS=20000 npm run bench
 *
 * Agent memory (bench/memory.ts, ~5 minutes) scales with BENCH_MEMORIES (recall over 100,000
 * memories), BENCH_MEMORIES_REAL (5,000 embedded by the model), BENCH_MEMORY_CONTEXT (1,000
 * context items to consolidate) and BENCH_MEMORY_WRITES (2,000).
 *
 * The PostgreSQL part needs a server (PEAKDB_BENCH_PG, default the local one that
 * `npm run setup:postgres` readies); it makes a database of its own and drops it.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { round } from './stats.js'
import { replicationBench } from './replication.js'
import { sealingBench } from './sealing.js'
import { folderIndexBench, swarmSearchBench } from './swarm.js'

const here = dirname(fileURLToPath(import.meta.url))
const N = Number(process.env.BENCH_N ?? 5000)
const VECTORS = Number(process.env.BENCH_VECTORS ?? 100_000)
const SCAN_DOCS = Number(process.env.BENCH_SCAN_DOCS ?? 100_000)

function runChild (script: string, args: string[]): Record<string, unknown> {
  const out = execFileSync(process.execPath, [join(here, script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 << 20 })
  const line = out.trim().split('\n').pop() ?? '{}'
  return JSON.parse(line) as Record<string, unknown>
}

process.stderr.write(`bench: local writes and reads, N=${N}\n`)
const raw = runChild('local.js', ['raw', String(N)])
const peak = runChild('local.js', ['peakdb', String(N)])

process.stderr.write(`bench: long reads on reader threads and on the connection, ${SCAN_DOCS} documents\n`)
const readPool = runChild('read-pool.js', [String(SCAN_DOCS)])

process.stderr.write('bench: CLI start-up against a running daemon, next to a bare node\n')
const cli = runChild('cli.js', [])
process.stderr.write('bench: web console size and first render in headless Chromium\n')
const webConsole = runChild('console.js', [])

process.stderr.write('bench: sealing throughput\n')
const sealing = sealingBench()
process.stderr.write('bench: replication between two processes on loopback\n')
const replication = await replicationBench(N)
process.stderr.write('bench: search quality on the labeled set\n')
const quality = runChild('search-quality.js', [])
process.stderr.write('bench: search quality on public test collections (when converted: see bench/ir-sets.ts)\n')
const publicSets = runChild('ir-sets.js', ['eval'])
process.stderr.write('bench: agent memory: quality on the labeled set, recall, consolidation, writes\n')
const memory = runChild('memory.js', [])
process.stderr.write('bench: embedding throughput and writes to an embedding collection\n')
const embedding = runChild('embedding.js', [String(Math.min(N, 2000))])
process.stderr.write(`bench: vector search over ${VECTORS} vectors (random, then clustered; the HNSW builds take a while)\n`)
const vectors = { random: runChild('vectors.js', ['random', String(VECTORS)]), clustered: runChild('vectors.js', ['clustered', String(VECTORS)]) }
const SWARM_DOCS = Number(process.env.BENCH_SWARM_DOCS ?? 10_000)
process.stderr.write(`bench: swarm search, three processes with ${SWARM_DOCS} notes each (embedding them takes a few minutes)\n`)
const swarm = await swarmSearchBench(SWARM_DOCS)
process.stderr.write('bench: indexing a folder of 1,000 small text files\n')
const folder = await folderIndexBench(1000)
process.stderr.write('bench: relayed vs direct between devices behind NATs (network namespaces, needs root)\n')
const relay = (() => { try { return runChild('relay.js', [String(N)]) } catch (err) { return { error: (err as Error).message.split('\n')[0] } } })()
process.stderr.write('bench: placement and hand-off simulation, 1,000 seeded runs\n')
const placement = runChild('placement-sim.js', ['1000', '300'])
process.stderr.write(`bench: PostgreSQL provider next to raw pg, its pool, and pgvector over ${VECTORS} vectors (the HNSW build takes a while)\n`)
const postgres = runChild('postgres.js', ['--vectors', String(VECTORS)])

const result = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: round(totalmem() / 2 ** 30, 1), node: process.version, platform: process.platform },
  local: {
    N,
    raw,
    peakdb: peak,
    ratios: {
      putVsRawAutocommit: round(Number(peak.putDocsPerSec) / Number(raw.autocommitDocsPerSec), 3),
      putManyVsRawTransaction: round(Number(peak.putManyDocsPerSec) / Number(raw.transactionDocsPerSec), 3),
      // B applying A's history of N single puts, next to raw inserting N rows in one transaction
      catchUpVsRawTransaction: round(Number((replication.catchUpSinglePutHistory as { docsPerSec: number }).docsPerSec) / Number(raw.transactionDocsPerSec), 3)
    },
    readPool
  },
  cli,
  console: webConsole,
  relay,
  fileProvider: runChild('file-provider.js', [String(N)]),
  router: runChild('router.js', []),
  watch: runChild('watch.js', ['300']),
  postgres,
  sealing,
  replication,
  search: { quality, publicSets, embedding, vectors, swarm, folder },
  memory,
  placement
}
const text = JSON.stringify(result, null, 2)
process.stdout.write(text + '\n')
mkdirSync(join(here, '..', '..', 'bench', 'out'), { recursive: true })
writeFileSync(join(here, '..', '..', 'bench', 'out', `bench-${result.date.replace(/[:.]/g, '-')}.json`), text + '\n')
