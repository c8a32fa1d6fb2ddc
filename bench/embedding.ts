/**
 * The default embedder and the write path around it: model load time, batched embedding
 * throughput (sentences/s; short 12-word sentences and 20-word notes), and `put` throughput into a collection that embeds (background
 * indexing on) against one that does not, with a raw better-sqlite3 autocommit baseline.
 *
 *   node dist/bench/embedding.js [N]
 *
 * Prints one JSON object on stdout.
 */
import '../node/polyfills.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PeakNode } from '../node/index.js'
import { peakRssMb, rawAutocommitPerSec, round } from './stats.js'

const N = Number(process.argv[2] ?? 2000)
const TOPICS = ['the tax return', 'a sourdough loaf', 'the garden shed', 'our cat', 'the quarterly review', 'a train to the coast', 'the broken heater', 'guitar practice']
const sentence = (i: number): string => `Note ${i}: remember ${TOPICS[i % TOPICS.length] as string} on day ${i % 31} and write down what changed since last time.`
const doc = (i: number): { _id: string, title: string, body: string } => ({ _id: `n${i}`, title: `Note ${i}`, body: sentence(i) })

const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-embedding-'))
try {
  const rawPerSec = await rawAutocommitPerSec(join(dir, 'raw.sqlite'), N, doc)
  let t: number

  const node = await PeakNode.open({ dir: join(dir, 'node') })
  // the write path: puts alternate between a collection that embeds and one that does not, in
  // rounds, so that warm-up and a growing database weigh on both alike
  const plain = node.collection('plain', { embed: false })
  const notes = node.collection('notes')
  let plainMs = 0
  let embeddingMs = 0
  const ROUND = 250
  for (let r = 0; r < N; r += ROUND) {
    t = performance.now()
    for (let i = r; i < Math.min(N, r + ROUND); i++) await plain.put(doc(i))
    plainMs += performance.now() - t
    t = performance.now()
    for (let i = r; i < Math.min(N, r + ROUND); i++) await notes.put(doc(i))
    embeddingMs += performance.now() - t
  }
  const plainPerSec = N / plainMs * 1000
  const embeddingPerSec = N / embeddingMs * 1000
  const pendingAfterWrites = await notes.pendingIndex()
  t = performance.now()
  await notes.indexed()
  const drainSeconds = (performance.now() - t) / 1000

  // the model alone: batched throughput here, load time on a fresh node below
  const embedder = await node.indexer.embedder()
  const throughput = async (texts: string[]): Promise<number> => {
    await embedder.embed(texts.slice(0, 64)) // warm-up (and starts the second worker)
    const t = performance.now()
    for (let i = 0; i < texts.length; i += 256) await embedder.embed(texts.slice(i, i + 256))
    return round(texts.length / (performance.now() - t) * 1000, 0)
  }
  const sentencesPerSec = {
    short: await throughput(Array.from({ length: 1024 }, (_, i) => `This is sentence number ${i} about topic ${i % 17} and some words`)),
    note: await throughput(Array.from({ length: 1024 }, (_, i) => sentence(i + N)))
  }
  await node.close()

  const cold = await PeakNode.open({ dir: join(dir, 'node') })
  t = performance.now()
  await (await cold.indexer.embedder()).embed(['load the model'])
  const firstEmbedSeconds = (performance.now() - t) / 1000
  await cold.close()

  process.stdout.write(JSON.stringify({
    embedder: embedder.id,
    firstEmbedSeconds: round(firstEmbedSeconds, 2),
    sentencesPerSec,
    put: {
      N,
      rawAutocommitDocsPerSec: round(rawPerSec, 0),
      embedOffDocsPerSec: round(plainPerSec, 0),
      embedOnDocsPerSec: round(embeddingPerSec, 0),
      pendingAfterWrites,
      drainSeconds: round(drainSeconds, 2)
    },
    peakRssMb: peakRssMb()
  }) + '\n')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
