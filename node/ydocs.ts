/**
 * Live Yjs documents backed by the log: local edits become `yjs` ops (coalesced per tick into
 * one entry), remote ones are applied to the open documents, and every update is persisted so
 * a document is rebuilt on reopen.
 */
import * as Y from 'yjs'
import { docIdProblem, mergeYjsUpdates, type DocId } from '../crdt/index.js'
import type { StorageProvider } from '../storage/index.js'
import type { Log } from './log.js'
import { InvalidDocumentError } from './errors.js'
import { createLogger } from './logger.js'

const logger = createLogger('yjs')
/** Origin given to updates that came from the log, so they are not written back. */
const FROM_LOG = Symbol('peakdb-log')
/** A document with more stored updates than this is compacted when opened. */
const COMPACT_AFTER = 64

function applyRemote (doc: Y.Doc, id: string, update: Uint8Array): void {
  try {
    Y.applyUpdate(doc, update, FROM_LOG)
  } catch (err) {
    logger.warn('could not apply a Yjs update', { doc: id, error: (err as Error).message })
  }
}

interface OpenDoc {
  readonly doc: Y.Doc
  pending: Uint8Array[]
  flushing: Promise<void> | undefined
}

/** The open Yjs documents of a node. */
export class YDocs {
  private readonly docs = new Map<string, OpenDoc>()
  private readonly opening = new Map<string, Promise<Y.Doc>>()
  /** Remote updates that arrived while a document was being loaded, applied once it is. */
  private readonly arriving = new Map<string, Uint8Array[]>()
  private readonly onYjs = (ev: { origin: 'local' | 'remote', updates: ReadonlyArray<{ doc: string, update: Uint8Array }> }): void => {
    if (ev.origin === 'local') return
    for (const { doc, update } of ev.updates) {
      const open = this.docs.get(doc)
      if (open === undefined) {
        this.arriving.get(doc)?.push(update)
        continue
      }
      applyRemote(open.doc, doc, update)
    }
  }

  constructor (private readonly log: Log, private readonly storage: StorageProvider) {
    log.on('yjs', this.onYjs)
  }

  /** The live document `id`, loaded from storage on first use. */
  async open (id: string): Promise<Y.Doc> {
    const p = docIdProblem(id)
    if (p !== undefined) throw new InvalidDocumentError(`Yjs document id ${p}`)
    const existing = this.docs.get(id)
    if (existing !== undefined) return existing.doc
    let opening = this.opening.get(id)
    if (opening === undefined) {
      opening = this.load(id as DocId).finally(() => this.opening.delete(id))
      this.opening.set(id, opening)
    }
    return await opening
  }

  private async load (id: DocId): Promise<Y.Doc> {
    const doc = new Y.Doc()
    // updates committed after the read below are caught here; applying one twice is harmless
    const arriving: Uint8Array[] = []
    this.arriving.set(id, arriving)
    try {
      const rows = await this.storage.yjsUpdates(id)
      if (rows.length > 0) {
        const merged = mergeYjsUpdates(rows.map(r => r.data))
        Y.applyUpdate(doc, merged, FROM_LOG)
        if (rows.length > COMPACT_AFTER) await this.storage.compactYjs(id, Y.encodeStateAsUpdate(doc), (rows[rows.length - 1] as { id: number }).id)
      }
      for (const update of arriving) applyRemote(doc, id, update)
    } finally {
      this.arriving.delete(id)
    }
    const open: OpenDoc = { doc, pending: [], flushing: undefined }
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === FROM_LOG) return
      open.pending.push(update)
      // coalesce the updates of one synchronous burst of edits into one entry
      open.flushing ??= new Promise<void>(resolve => setImmediate(resolve)).then(async () => {
        open.flushing = undefined
        const updates = open.pending.splice(0)
        if (updates.length === 0) return
        await this.log.append([[{ t: 'yjs', d: id, u: mergeYjsUpdates(updates) }]])
      }).catch(err => logger.error('could not record a Yjs update', { doc: id, error: (err as Error).message }))
    })
    this.docs.set(id, open)
    return doc
  }

  /** Waits until every local edit so far is in the log. */
  async flush (): Promise<void> {
    for (const open of this.docs.values()) await open.flushing
  }

  /** Writes pending edits and destroys the open documents. */
  async close (): Promise<void> {
    await this.flush()
    this.log.off('yjs', this.onYjs)
    for (const open of this.docs.values()) open.doc.destroy()
    this.docs.clear()
  }
}
