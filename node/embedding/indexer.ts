/**
 * The search indexer: takes documents from the durable index queue (filled by the commit that
 * changed them), extracts and chunks their text, embeds new chunks in batches, and writes
 * keyword and vector indexes. It runs off the write path (in the background of a running node,
 * or on demand when a search needs the queue drained); the model itself runs in its own thread.
 */
import { EventEmitter } from 'node:events'
import type { JsonObject } from '../../crdt/index.js'
import type { CollectionSettings, IndexTask, IndexUpdate, StorageProvider, VectorChanges } from '../../storage/index.js'
import { createLogger } from '../logger.js'
import { normalise, type Embedder } from './embedder.js'
import { chunkText, documentText } from './text.js'

const logger = createLogger('indexer')
/** Documents per batch. */
const BATCH_DOCS = 32
/** Background indexing waits for this long without new changes before a batch... */
const QUIET_MS = 200
/** ...but no longer than this, so that a steady stream of writes still gets indexed. */
const MAX_DEFER_MS = 2000

/** Progress of the indexer. */
export interface IndexProgress {
  readonly collection: string
  /** Documents indexed by this run so far. */
  readonly done: number
  /** Documents still waiting in that collection. */
  readonly pending: number
}

/** Events of the indexer. */
export interface IndexerEvents {
  progress: [IndexProgress]
  /** A batch failed (it stays queued and is retried on the next change). */
  failure: [Error]
}

const DEFAULT_SETTINGS: CollectionSettings = { embed: 'auto' }

/** Processes the index queue of one storage provider. */
export class Indexer extends EventEmitter<IndexerEvents> {
  private embedderPromise: Promise<Embedder> | undefined
  private running: Promise<void> | undefined
  private wanted = false
  private stopped = false
  private background = false
  private lastKick = 0
  /** Someone waits for the queue (a drain): no settling, all of the embedder's threads. */
  private hurry = 0
  private wakeUp: (() => void) | undefined
  private readonly checkedModel = new Set<string>()

  constructor (private readonly storage: StorageProvider, private readonly makeEmbedder: () => Promise<Embedder>, private readonly onVectors?: (changes: VectorChanges) => void) {
    super()
  }

  /** The node's embedder (created on first use: the model loads only when something needs it). */
  async embedder (): Promise<Embedder> {
    this.embedderPromise ??= this.makeEmbedder()
    return await this.embedderPromise
  }

  /** The embedder, if it was created already. */
  async embedderIfLoaded (): Promise<Embedder | undefined> {
    return this.embedderPromise === undefined ? undefined : await this.embedderPromise
  }

  /** Keeps indexing in the background whenever the queue has work (and re-embeds after a model change). */
  startBackground (): void {
    this.background = true
    void (async () => {
      for (const c of await this.storage.collections()) {
        if (this.stopped) return
        if ((await this.storage.collectionSettings(c.name))?.embed !== false) await this.checkModel(c.name)
      }
    })().catch(err => logger.warn('could not check the embedder of stored vectors', { error: (err as Error).message })).finally(() => this.kick())
  }

  /** New work may be queued. */
  kick (): void {
    if (this.stopped || !this.background) return
    this.lastKick = performance.now()
    this.wanted = true
    this.running ??= this.loop().finally(() => {
      this.running = undefined
      if (this.wanted && !this.stopped) this.kick()
    })
  }

  private async loop (): Promise<void> {
    while (this.wanted && !this.stopped) {
      this.wanted = false
      try {
        while (!this.stopped) {
          await this.settle()
          if (this.stopped || await this.step(undefined, this.hurry === 0) === 0) break
        }
      } catch (err) {
        logger.warn('indexing failed; will retry on the next change', { error: (err as Error).message })
        this.emit('failure', err as Error)
        return
      }
    }
  }

  /**
   * Indexes until `collection`'s queue (or the whole queue) is empty, or the signal fires.
   * Resolves with how many documents are still pending.
   */
  async drain (collection?: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    this.hurry++
    this.wakeUp?.()
    try {
      return await this.drainNow(collection, options)
    } finally {
      this.hurry--
    }
  }

  private async drainNow (collection: string | undefined, options: { signal?: AbortSignal }): Promise<number> {
    for (;;) {
      if (this.stopped) return await this.storage.indexQueueCount(collection)
      if (options.signal?.aborted === true) return await this.storage.indexQueueCount(collection)
      if (this.running !== undefined) {
        await Promise.race([this.running, new Promise(resolve => setTimeout(resolve, 50))])
      }
      if (await this.storage.indexQueueCount(collection) === 0) return 0
      if (this.running === undefined) {
        const p = this.step(collection)
        this.running = p.then(() => {}, () => {}).finally(() => { this.running = undefined })
        await p
      }
    }
  }

  /**
   * Re-queues a collection whose vectors came from another embedder (the model changed), once
   * per collection and run.
   */
  async checkModel (collection: string, embedder?: Embedder): Promise<void> {
    if (this.checkedModel.has(collection)) return
    const ids = await this.storage.embeddersOf(collection)
    if (ids.length === 0) {
      this.checkedModel.add(collection)
      return
    }
    const current = embedder ?? await this.embedder()
    this.checkedModel.add(collection)
    if (ids.some(id => id !== current.id)) {
      const n = await this.storage.requeueCollection(collection)
      logger.info('embedder changed: re-embedding collection', { collection, documents: n, embedder: current.id })
      this.kick()
    }
  }

  /** Forgets which collections were checked for a model change (after settings change). */
  invalidate (collection: string): void {
    this.checkedModel.delete(collection)
  }

  /**
   * Lets writes and replication go first: waits until no change came for {@link QUIET_MS}, at
   * most {@link MAX_DEFER_MS}.
   */
  private async settle (): Promise<void> {
    const start = performance.now()
    while (!this.stopped && this.hurry === 0) {
      const now = performance.now()
      const wait = Math.min(QUIET_MS - (now - this.lastKick), MAX_DEFER_MS - (now - start))
      if (wait <= 0) return
      await new Promise<void>(resolve => {
        this.wakeUp = resolve
        setTimeout(resolve, wait).unref()
      })
      this.wakeUp = undefined
    }
  }

  /** Indexes one batch; returns how many documents it handled. */
  private async step (collection?: string, background = false): Promise<number> {
    const tasks = await this.storage.indexQueue(BATCH_DOCS, collection)
    if (tasks.length === 0) return 0
    const settingsOf = new Map<string, CollectionSettings>()
    const updates: Array<{ task: IndexTask, text: string | undefined, chunks: string[] | undefined | 'none' }> = []
    for (const task of tasks) {
      let settings = settingsOf.get(task.collection)
      if (settings === undefined) settingsOf.set(task.collection, settings = await this.storage.collectionSettings(task.collection) ?? DEFAULT_SETTINGS)
      const stored = await this.storage.getDocument(task.collection, task.id)
      if (stored?.body == null) {
        updates.push({ task, text: undefined, chunks: 'none' })
        continue
      }
      const body = stored.body as JsonObject
      const text = documentText(body, settings.embed === false ? 'auto' : settings.embed)
      updates.push({ task, text, chunks: settings.embed === false ? 'none' : chunkText(text) })
    }
    let embedder: Embedder | undefined
    const wantVectors = updates.some(u => Array.isArray(u.chunks) && u.chunks.length > 0)
    if (wantVectors) {
      embedder = await this.embedder()
      for (const c of settingsOf.keys()) await this.checkModel(c, embedder)
    }
    // embed only chunks whose text (or model) changed since they were indexed
    const toEmbed: string[] = []
    const plan: Array<{ u: typeof updates[number], keep: boolean, from: number }> = []
    for (const u of updates) {
      if (!Array.isArray(u.chunks) || u.chunks.length === 0 || embedder === undefined) {
        plan.push({ u, keep: false, from: -1 })
        continue
      }
      const existing = await this.storage.indexedChunks(u.task.collection, u.task.id)
      const same = existing.length === u.chunks.length && existing.every((c, i) => c.embedder === embedder?.id && c.text === u.chunks?.[i])
      if (same) {
        plan.push({ u, keep: true, from: -1 })
      } else {
        plan.push({ u, keep: false, from: toEmbed.length })
        toEmbed.push(...u.chunks)
      }
    }
    const vectors = toEmbed.length > 0 && embedder !== undefined ? await embedder.embed(toEmbed, { background }) : []
    if (embedder !== undefined && vectors.some(v => v.length !== embedder?.dims)) throw new Error(`embedder ${embedder.id} returned vectors of the wrong size`)
    const out: IndexUpdate[] = plan.map(({ u, keep, from }) => {
      const base = { collection: u.task.collection, id: u.task.id, ver: u.task.ver, text: u.text }
      if (keep) return base
      if (!Array.isArray(u.chunks) || u.chunks.length === 0 || embedder === undefined) return { ...base, chunks: [] }
      return {
        ...base,
        chunks: u.chunks.map((text, i) => ({ text, vector: normalise(vectors[from + i] as Float32Array) })),
        embedder: { id: embedder.id, dims: embedder.dims }
      }
    })
    this.onVectors?.(await this.storage.applyIndexUpdates(out))
    const counts = new Map<string, number>()
    for (const t of tasks) counts.set(t.collection, (counts.get(t.collection) ?? 0) + 1)
    for (const [c, done] of counts) this.emit('progress', { collection: c, done, pending: await this.storage.indexQueueCount(c) })
    return tasks.length
  }

  /** Stops background work and closes the embedder. */
  async close (): Promise<void> {
    this.stopped = true
    this.wakeUp?.()
    await this.running?.catch(() => {})
    const e = await this.embedderPromise?.catch(() => undefined)
    await e?.close?.()
  }
}
