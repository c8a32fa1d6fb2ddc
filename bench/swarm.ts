/**
 * Swarm search and folder indexing.
 * - swarm search: three processes on loopback (one swarm), each with N short notes in its
 *   device-local `files` collection embedded by the default model; one of them asks all three
 *   100 times; latency of `node.swarm.search` including the query embedding, and that
 *   embedding's share.
 * - folder indexing: 1,000 small text files indexed into a fresh node (default embedder):
 *   files/s for the walk + read + save alone, and including the embedding.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PeakNode } from '../node/index.js'
import { Replica } from './replication.js'
import { percentile, round } from './stats.js'

const QUERIES = ['when is the dentist', 'tax paperwork', 'bread baking', 'car tyres for winter', 'fix the heating', 'present for a birthday', 'music lessons', 'trip by rail to the sea']

export async function swarmSearchBench (n: number, queries = 100): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-swarm-'))
  const replicas = await Promise.all([0, 1, 2].map(async () => await Replica.start()))
  try {
    const [a, b, c] = replicas as [Replica, Replica, Replica]
    const first = await a.call({ cmd: 'openSearch', dir: join(dir, 'a'), name: 'a' })
    const phrase = first.phrase as string
    await b.call({ cmd: 'openSearch', dir: join(dir, 'b'), phrase, name: 'b' })
    await c.call({ cmd: 'openSearch', dir: join(dir, 'c'), phrase, name: 'c' })
    await b.call({ cmd: 'connect', addr: first.addr })
    await c.call({ cmd: 'connect', addr: first.addr })
    const fills = await Promise.all(replicas.map(async (r, i) => await r.call({ cmd: 'fillNotes', n, seed: i + 1 }, 1_800_000)))
    // warm-up: model loaded on every device, connections and streams in use
    for (const q of QUERIES) await a.call({ cmd: 'swarmSearch', text: q, k: 10 })
    const total: number[] = []
    const embed: number[] = []
    const remote: number[] = []
    let answered = 0
    for (let i = 0; i < queries; i++) {
      const r = await a.call({ cmd: 'swarmSearch', text: `${QUERIES[i % QUERIES.length] as string} ${i}`, k: 10 })
      total.push(r.ms as number)
      embed.push(r.embedMs as number)
      const devices = r.devices as Array<{ status: string, ms: number, self: boolean }>
      for (const d of devices) if (!d.self) remote.push(d.ms)
      if (devices.every(d => d.status === 'ok')) answered++
    }
    const closes = await Promise.all(replicas.map(async r => await r.call({ cmd: 'close' })))
    return {
      devices: 3,
      docsPerDevice: n,
      indexSecondsPerDevice: fills.map(f => round(f.seconds as number, 1)),
      vectorIndexes: fills.map(f => f.vectorIndexes),
      queries,
      allDevicesAnswered: answered,
      p50Ms: round(percentile(total, 50), 2),
      p95Ms: round(percentile(total, 95), 2),
      queryEmbeddingP50Ms: round(percentile(embed, 50), 2),
      queryEmbeddingShareOfP50: round(percentile(embed, 50) / percentile(total, 50), 3),
      remoteAnswerP50Ms: round(percentile(remote, 50), 2),
      peakRssMb: closes.map(x => x.peakRssMb)
    }
  } finally {
    for (const r of replicas) r.child.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function folderIndexBench (files = 1000): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-folder-'))
  try {
    const folder = join(dir, 'folder')
    for (let i = 0; i < files; i++) {
      const sub = join(folder, `d${i % 20}`)
      if (i < 20) mkdirSync(sub, { recursive: true })
      writeFileSync(join(sub, `note-${i}.md`), `# Note ${i}\n\nRemember ${QUERIES[i % QUERIES.length] as string} on day ${i % 28}. Some more words about item ${i}.\n`)
    }
    const node = await PeakNode.open({ dir: join(dir, 'node'), backgroundIndexing: false })
    try {
      let t = performance.now()
      const saved = await node.files.index(folder, { waitForIndex: false })
      const saveSeconds = (performance.now() - t) / 1000
      t = performance.now()
      await node.collection('files').indexed()
      const embedSeconds = (performance.now() - t) / 1000
      t = performance.now()
      const again = await node.files.index(folder)
      const rescanSeconds = (performance.now() - t) / 1000
      return {
        files: saved.files,
        walkReadSaveFilesPerSec: round(files / saveSeconds, 0),
        embedSeconds: round(embedSeconds, 2),
        withEmbeddingFilesPerSec: round(files / (saveSeconds + embedSeconds), 0),
        unchangedRescanMs: round(rescanSeconds * 1000, 1),
        rescanUnchanged: again.unchanged
      }
    } finally {
      await node.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
