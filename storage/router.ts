/**
 * The DataRouter: one {@link StorageProvider} over a node's primary storage and the named
 * providers its collections are routed to.
 *
 * ```
 *                 ┌──────────── DataRouter ────────────┐
 *   log ops ────► │ primary: log (entries, heads,      │
 *                 │   membership), unrouted documents  │
 *                 │ routes:  events  ──► warehouse (pg)│ ◄── documents, queries, search
 *                 │          tmp.*   ──► scratch (file)│     of the routed collection
 *                 └────────────────────────────────────┘
 * ```
 *
 * The log stays in the primary and is the one source of truth. A commit stores the entries (and
 * the ops of unrouted collections) in the primary first, then hands each routed provider the ops
 * of its collections with their log positions; the provider records the position it applied in
 * the same transaction as the documents. After a crash between the two, {@link catchUp} replays
 * the log from the lowest recorded position, and each provider skips what it already holds:
 * nothing is lost and nothing is applied twice.
 *
 * A collection is routed by its name: an exact route, else the longest `prefix*` route, else the
 * primary. A provider that keeps documents only (the file provider) takes device-local
 * collections only; replicated collections matching its routes stay in the primary.
 */
import type { DataOp, JsonObject, Stamp } from '../crdt/index.js'
import { combineDigests } from './digest.js'
import { CrossProviderError, ProviderCapabilityError } from './errors.js'
import type {
  CollectionInfo, CollectionSettings, CommitItem, CommitResult, ControlRecord, DocChange, DocumentStore, IndexTask, IndexUpdate, LogHead,
  MaterializeItem, MaterializingStore, PendingApply, ReadLimits, SearchStore, StorageProvider, StoredDoc, StoredEntry, TextHit, VectorChanges
} from './provider.js'
import { LOCAL_PREFIX } from './provider.js'
import type { FieldPath, Filter, NormalisedQuery } from './query.js'

/** The name of the node's own storage in routes and listings. */
export const PRIMARY = 'primary'
/** Primary meta key: where each collection lives. */
const PLACEMENT_META = 'collection-placement'
/** Primary meta key: providers that must replay the log from a position. */
const REPLAY_META = 'router-replay-from'

/** A provider a collection can be routed to. */
export type RoutedStore = DocumentStore & Partial<MaterializingStore> & Partial<SearchStore>

/** Opens the stored entries of the log for replay: their stamp and ops, or undefined to skip. */
export type EntryOpener = (entry: StoredEntry) => { stamp: Stamp, ops: readonly DataOp[] } | undefined

function materializes (s: RoutedStore): s is DocumentStore & MaterializingStore & Partial<SearchStore> {
  return typeof s.materialize === 'function'
}

function searches (s: RoutedStore): s is DocumentStore & Partial<MaterializingStore> & SearchStore {
  return typeof s.textSearch === 'function'
}

/** The user-facing name of a storage name (device-local collections carry a prefix). */
function plainName (storageName: string): string {
  return storageName.startsWith(LOCAL_PREFIX) ? storageName.slice(LOCAL_PREFIX.length) : storageName
}

/** Routes collections of a node to providers; see the module comment. */
export class DataRouter implements StorageProvider {
  readonly kind: string
  readonly location: string
  private readonly exact = new Map<string, string>()
  private prefixes: Array<[string, string]> = []
  /** Commits, one at a time: a routed provider applies log positions in order. */
  private committing: Promise<unknown> = Promise.resolve()
  private lastPos = 0
  /** Providers that failed a hand-over, with the reason, until a catch-up succeeds. */
  private readonly behind = new Map<string, string>()
  private opener: EntryOpener | undefined
  private retry: NodeJS.Timeout | undefined
  private retries = 0
  private closing = false
  /** Told when a provider falls behind the log (logging). */
  onBehind: ((provider: string, err: Error) => void) | undefined
  /** Collections known to hold data somewhere (their route can no longer change without a move). */
  private readonly seen = new Set<string>()
  /** Where each collection lives, as recorded in the primary (routes that change move them). */
  private readonly placed = new Map<string, string>()
  private placementDirty = false
  /** Adopted tables: storage name → their name in listings and their store. */
  private readonly adopted = new Map<string, { name: string, store: RoutedStore }>()
  /** Providers that must replay the log from a position below their own (persisted). */
  private readonly replayFrom = new Map<string, number>()
  /** Positions of entries opened late while a move runs (they went to the old provider). */
  private openedLate: number[] | undefined

  /**
   * `providers` are the named stores (not the primary); `routes` maps a collection name, or a
   * `prefix*` pattern, to a provider name.
   */
  constructor (readonly primary: StorageProvider, readonly providers: ReadonlyMap<string, RoutedStore>, routes: Readonly<Record<string, string>> = {}) {
    this.kind = primary.kind
    this.location = primary.location
    for (const [pattern, provider] of Object.entries(routes)) this.setRoute(pattern, provider)
  }

  /** Sets (or with `primary` removes) the route of a collection name or `prefix*` pattern. */
  setRoute (pattern: string, provider: string): void {
    if (provider !== PRIMARY && !this.providers.has(provider)) throw new ProviderCapabilityError(`no provider named ${JSON.stringify(provider)} (configured: ${[PRIMARY, ...this.providers.keys()].join(', ')})`)
    const star = pattern.endsWith('*')
    if (star && pattern.indexOf('*') !== pattern.length - 1) throw new ProviderCapabilityError(`route ${JSON.stringify(pattern)}: * may only end a pattern`)
    if (star) {
      this.prefixes = this.prefixes.filter(([p]) => p !== pattern.slice(0, -1))
      if (provider !== PRIMARY) this.prefixes.push([pattern.slice(0, -1), provider])
      this.prefixes.sort((a, b) => b[0].length - a[0].length)
    } else {
      // an exact route to the primary is kept: it overrides a pattern
      this.exact.set(pattern, provider)
    }
  }

  /** Every route, as given. */
  routes (): Record<string, string> {
    return Object.fromEntries([...this.exact, ...this.prefixes.map(([p, v]) => [`${p}*`, v] as const)].sort())
  }

  /** Serves a device-local collection (storage name) from an adopted table's store. */
  adopt (collection: string, name: string, store: RoutedStore): void {
    if (!collection.startsWith(LOCAL_PREFIX)) throw new ProviderCapabilityError(`an adopted table is kept under a device-local name, not ${collection}`)
    this.adopted.set(collection, { name, store })
    this.seen.add(collection)
  }

  /** The provider name a collection (storage name) lives in. */
  providerOf (collection: string): string {
    const adopted = this.adopted.get(collection)
    if (adopted !== undefined) return adopted.name
    const name = plainName(collection)
    const routed = this.exact.get(name) ?? this.prefixes.find(([p]) => name.startsWith(p))?.[1]
    if (routed === undefined || routed === PRIMARY) return PRIMARY
    const store = this.providers.get(routed) as RoutedStore
    // a documents-only provider cannot take log ops: replicated collections stay in the primary
    if (!collection.startsWith(LOCAL_PREFIX) && !materializes(store)) return PRIMARY
    return routed
  }

  private storeOf (collection: string): RoutedStore {
    const adopted = this.adopted.get(collection)
    if (adopted !== undefined) return adopted.store
    const name = this.providerOf(collection)
    return name === PRIMARY ? this.primary : this.providers.get(name) as RoutedStore
  }

  private searchOf (collection: string): SearchStore {
    const store = this.storeOf(collection)
    if (!searches(store)) throw new ProviderCapabilityError(`collection ${plainName(collection)} lives in provider ${this.providerOf(collection)} (${store.kind}), which keeps documents only: search needs sqlite or postgres`)
    return store
  }

  /**
   * The one provider serving all of `collections`: throws {@link CrossProviderError} when they
   * live in different providers (a query cannot span two databases).
   */
  providerFor (collections: readonly string[]): string {
    const names = new Set(collections.map(c => this.providerOf(c)))
    if (names.size > 1) throw new CrossProviderError(`collections ${collections.map(c => `${plainName(c)} (${this.providerOf(c)})`).join(', ')} live in different providers; query them one at a time`)
    return [...names][0] ?? PRIMARY
  }

  // --- the log: the primary, with routed ops handed over ------------------------------------

  private split (ops: readonly DataOp[]): { local: DataOp[], routed: Map<string, DataOp[]> } {
    const local: DataOp[] = []
    const routed = new Map<string, DataOp[]>()
    for (const op of ops) {
      if (op.t !== 'yjs' && !this.seen.has(op.c)) this.see(op.c)
      const target = op.t === 'yjs' ? PRIMARY : this.providerOf(op.c)
      if (target === PRIMARY) {
        local.push(op)
      } else {
        let list = routed.get(target)
        if (list === undefined) routed.set(target, list = [])
        list.push(op)
      }
    }
    return { local, routed }
  }

  private materializer (name: string): MaterializingStore {
    return this.providers.get(name) as MaterializingStore
  }

  private serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = this.committing.then(fn, fn)
    this.committing = next.catch(() => undefined)
    return next
  }

  async commit (items: readonly CommitItem[]): Promise<CommitResult> {
    // nothing can be routed (a node on PostgreSQL with adopted tables only): the primary alone
    if (this.providers.size === 0) return await this.primary.commit(items)
    return await this.serial(async () => {
      const splits = items.map(i => this.split(i.ops))
      // the primary's commit checks its own ops; the routed ones must fail before it stores anything
      DataRouter.check(splits.flatMap(sp => [...sp.routed.values()].map(ops => ({ ops }))))
      const result = await this.primary.commit(items.map((i, n) => splits[n]!.routed.size === 0 ? i : { ...i, ops: splits[n]!.local }))
      const batches = new Map<string, MaterializeItem[]>()
      items.forEach((item, n) => {
        const pos = result.positions[n] as number
        if (pos > this.lastPos) this.lastPos = pos
        if (pos < 0 || item.pending === true || item.quarantined === true) return
        for (const [target, ops] of splits[n]!.routed) {
          let b = batches.get(target)
          if (b === undefined) batches.set(target, b = [])
          b.push({ pos, stamp: item.stamp, ops })
        }
      })
      await this.savePlacement()
      if (batches.size === 0) return result
      const changes = [...result.changes]
      for (const [target, batch] of batches) changes.push(...await this.handOver(target, batch))
      return { ...result, changes }
    })
  }

  /**
   * Hands ops over to a routed provider after the log committed them. The log is the truth from
   * then on: a provider that fails (a server gone away) falls behind instead of failing the
   * commit, and catches up from the log, retried in the background.
   */
  private async handOver (target: string, batch: readonly MaterializeItem[], options?: { replay?: boolean }): Promise<DocChange[]> {
    const from = Math.min(...batch.map(i => i.pos))
    if (this.behind.has(target)) {
      // positions below the provider's own (entries opened late) must be replayed too
      if (options?.replay === true) await this.markReplay(target, from)
      return []
    }
    try {
      return await this.materializer(target).materialize(batch, options)
    } catch (err) {
      await this.fellBehind(target, err as Error, from)
      return []
    }
  }

  /** Records (in the primary, so a crash keeps it) that a provider must replay the log from `from`. */
  private async markReplay (target: string, from: number): Promise<void> {
    const now = this.replayFrom.get(target)
    if (now !== undefined && now <= from) return
    this.replayFrom.set(target, from)
    await this.primary.setMeta(REPLAY_META, JSON.stringify(Object.fromEntries(this.replayFrom)))
  }

  private async fellBehind (target: string, err: Error, from: number): Promise<void> {
    if (!this.behind.has(target)) this.onBehind?.(target, err)
    this.behind.set(target, err.message)
    await this.markReplay(target, from).catch(() => undefined)
    if (this.retry !== undefined || this.opener === undefined || this.closing) return
    const delay = Math.min(30_000, 500 * 2 ** Math.min(6, this.retries++))
    this.retry = setTimeout(() => {
      this.retry = undefined
      void this.catchUp(this.opener as EntryOpener).then(() => { if (this.behind.size === 0) this.retries = 0 }, () => undefined)
    }, delay)
    this.retry.unref()
  }

  /** Providers that failed a hand-over and wait for a catch-up, with the reason. */
  lagging (): ReadonlyMap<string, string> {
    return this.behind
  }

  /** Fails now, before anything is stored, for ops no provider could store (not JSON). */
  private static check (items: readonly { ops: readonly DataOp[] }[]): void {
    for (const item of items) for (const op of item.ops) if (op.t === 'put' || op.t === 'patch') JSON.stringify(op.f)
  }

  async applyPending (items: readonly PendingApply[]): Promise<CommitResult> {
    if (this.providers.size === 0) return await this.primary.applyPending(items)
    return await this.serial(async () => {
      const splits = items.map(i => this.split(i.ops))
      // routed providers first: when the primary then fails, the retry re-applies (LWW merges are idempotent)
      const changes: DocChange[] = []
      const batches = new Map<string, MaterializeItem[]>()
      const positions = items.some((it, n) => it.pos === undefined && splits[n]!.routed.size > 0) ? await this.pendingPositions() : undefined
      items.forEach((item, n) => {
        const pos = item.pos ?? positions?.get(Buffer.from(item.cid).toString('base64'))
        if (pos !== undefined) this.openedLate?.push(pos)
        if (splits[n]!.routed.size === 0 || pos === undefined) return
        for (const [target, ops] of splits[n]!.routed) {
          let b = batches.get(target)
          if (b === undefined) batches.set(target, b = [])
          b.push({ pos, stamp: item.stamp, ops })
        }
      })
      for (const [target, batch] of batches) changes.push(...await this.handOver(target, batch, { replay: true }))
      const result = await this.primary.applyPending(items.map((i, n) => ({ ...i, ops: splits[n]!.local })))
      await this.savePlacement()
      return { ...result, changes: [...result.changes, ...changes] }
    })
  }

  /** Log positions of the pending entries, by CID (base64). */
  private async pendingPositions (): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for (let after = 0; ;) {
      const page = await this.primary.pendingEntries(after, 1000)
      if (page.length === 0) return out
      for (const e of page) out.set(Buffer.from(e.cid).toString('base64'), e.pos)
      after = (page[page.length - 1] as StoredEntry).pos
    }
  }

  private targets (): Array<[string, DocumentStore & MaterializingStore & Partial<SearchStore>]> {
    return [...this.providers].filter((e): e is [string, DocumentStore & MaterializingStore & Partial<SearchStore>] => materializes(e[1]))
  }

  async rematerialize (open: EntryOpener): Promise<void> {
    if (this.providers.size === 0) return await this.primary.rematerialize(open)
    await this.serial(async () => {
      // until the routed providers are rebuilt, a crash leaves them marked to replay it all
      for (const [name] of this.targets()) await this.markReplay(name, 0)
      await this.primary.rematerialize(entry => {
        const opened = open(entry)
        if (opened === undefined) return undefined
        return { stamp: opened.stamp, ops: this.split(opened.ops).local }
      })
      for (const [name, store] of this.targets()) {
        for (const c of await store.collections()) if (!c.name.startsWith(LOCAL_PREFIX) && this.providerOf(c.name) === name) await store.dropCollection(c.name)
      }
      await this.replayLog(open, 0, new Map(this.targets().map(([name]) => [name, 0])))
    })
  }

  /**
   * Replays the log's routed ops into providers, each from its own position, page by page
   * (LWW merges make replaying what a provider holds harmless); records the log's end as
   * applied in each that took it all, and marks the others to replay again. Returns the ops
   * handed over.
   */
  private async replayLog (open: EntryOpener, from: number, starts: ReadonlyMap<string, number>, onProgress?: (done: number, total: number) => void): Promise<number> {
    const failed = new Set<string>()
    let replayed = 0
    let done = 0
    const total = onProgress === undefined ? 0 : await this.primary.entryCount()
    let after = from
    for (;;) {
      const page = await this.primary.scanEntries(after, 500, { applied: true })
      if (page.length === 0) break
      const batches = new Map<string, MaterializeItem[]>()
      for (const entry of page) {
        after = entry.pos
        done++
        const opened = open(entry)
        if (opened === undefined) continue
        for (const [target, ops] of this.split(opened.ops).routed) {
          if (!starts.has(target) || failed.has(target) || entry.pos <= (starts.get(target) as number)) continue
          let b = batches.get(target)
          if (b === undefined) batches.set(target, b = [])
          b.push({ pos: entry.pos, stamp: opened.stamp, ops })
        }
      }
      for (const [target, batch] of batches) {
        try {
          await this.materializer(target).materialize(batch, { replay: true })
          replayed += batch.length
        } catch (err) {
          failed.add(target)
          await this.fellBehind(target, err as Error, (batch[0] as MaterializeItem).pos)
        }
      }
      onProgress?.(done, total)
    }
    this.lastPos = Math.max(this.lastPos, after)
    for (const [name] of starts) {
      if (failed.has(name)) continue
      if (this.lastPos > 0) await this.materializer(name).materialize([], { upTo: this.lastPos })
      this.behind.delete(name)
      this.replayFrom.delete(name)
    }
    await this.primary.setMeta(REPLAY_META, JSON.stringify(Object.fromEntries(this.replayFrom)))
    await this.savePlacement()
    return replayed
  }

  /**
   * Brings every routed provider up to the log: replays the entries after the position each
   * recorded (or from where it was marked to replay: a crash between a log commit and a routed
   * write, a provider that was down, entries opened late), then records the log's end as
   * applied. A provider that fails again falls behind and is retried in the background.
   * `onProgress` gets entries read and entries in the log. Returns the ops handed over.
   */
  async catchUp (open: EntryOpener, onProgress?: (done: number, total: number) => void): Promise<number> {
    this.opener = open
    const targets = this.targets()
    if (targets.length === 0) return 0
    return await this.serial(async () => {
      const marked = JSON.parse(await this.primary.getMeta(REPLAY_META) ?? '{}') as Record<string, number>
      for (const [name, pos] of Object.entries(marked)) if (!this.replayFrom.has(name) || (this.replayFrom.get(name) as number) > pos) this.replayFrom.set(name, pos)
      const starts = new Map<string, number>()
      for (const [name, store] of targets) {
        try {
          starts.set(name, Math.min(await store.appliedPosition(), this.replayFrom.get(name) ?? Number.MAX_SAFE_INTEGER))
        } catch (err) {
          await this.fellBehind(name, err as Error, this.replayFrom.get(name) ?? 0)
        }
      }
      if (starts.size === 0) return 0
      return await this.replayLog(open, Math.min(...starts.values()), starts, onProgress)
    })
  }

  /**
   * Moves a collection to another provider: re-materialises it there from the log (progress in
   * entries), switches its route, then removes it from the old provider. Only replicated
   * collections move this way (a device-local collection has no log to rebuild from).
   */
  async move (collection: string, to: string, open: EntryOpener, onProgress?: (done: number, total: number) => void, from = this.providerOf(collection)): Promise<void> {
    if (collection.startsWith(LOCAL_PREFIX)) throw new ProviderCapabilityError(`collection ${plainName(collection)} is device-local: it has no log to rebuild it from in another provider`)
    if (from === to) return
    const target = to === PRIMARY ? this.primary : this.providers.get(to)
    if (target === undefined) throw new ProviderCapabilityError(`no provider named ${JSON.stringify(to)} (configured: ${[PRIMARY, ...this.providers.keys()].join(', ')})`)
    if (!materializes(target)) throw new ProviderCapabilityError(`provider ${to} (${target.kind}) keeps device-local collections only; ${collection} is replicated`)
    if (this.behind.has(to)) throw new ProviderCapabilityError(`provider ${to} is behind the log (${this.behind.get(to) as string}); move the collection once it has caught up`)
    const total = await this.primary.entryCount()
    let done = 0
    const copy = async (page: readonly StoredEntry[]): Promise<void> => {
      const batch: MaterializeItem[] = []
      for (const entry of page) {
        const opened = open(entry)
        if (opened === undefined) continue
        const ops = opened.ops.filter(op => op.t !== 'yjs' && op.c === collection)
        if (ops.length > 0) batch.push({ pos: entry.pos, stamp: opened.stamp, ops })
      }
      if (batch.length > 0) await target.materialize(batch, { replay: true })
    }
    const replay = async (after: number): Promise<number> => {
      for (;;) {
        const page = await this.primary.scanEntries(after, 500, { applied: true })
        if (page.length === 0) return after
        await copy(page)
        after = (page[page.length - 1] as StoredEntry).pos
        done += page.length
        onProgress?.(Math.min(done, total), total)
      }
    }
    await target.dropCollection(collection)
    // the bulk without holding commits back; what arrives meanwhile (new entries, and old ones
    // opened late, which went to the old provider) is replayed under the lock
    this.openedLate = []
    try {
      const upTo = await replay(0)
      await this.serial(async () => {
        await replay(upTo)
        for (const pos of this.openedLate ?? []) await copy(await this.primary.scanEntries(pos - 1, 1, { applied: true }))
        const old = from === PRIMARY ? this.primary : this.providers.get(from)
        if (this.providerOf(collection) !== to) this.setRoute(collection, to)
        if (old !== undefined && old !== target && materializes(old)) await old.dropCollection(collection)
        this.seen.add(collection)
        this.placed.set(collection, to)
        this.placementDirty = true
        await this.savePlacement()
      })
    } finally {
      this.openedLate = undefined
    }
  }

  /** Where each collection was placed when last seen (`collection-placement` in the primary). */
  async loadPlacement (): Promise<ReadonlyMap<string, string>> {
    const saved = JSON.parse(await this.primary.getMeta(PLACEMENT_META) ?? '{}') as Record<string, string>
    for (const [c, p] of Object.entries(saved)) this.placed.set(c, p)
    return new Map(this.placed)
  }

  /** Records where every collection seen lives now (after reconciling routes at open). */
  async settlePlacement (): Promise<void> {
    for (const c of await this.knownCollections()) this.placed.set(c, this.providerOf(c))
    this.placementDirty = true
    await this.savePlacement()
  }

  private async savePlacement (): Promise<void> {
    if (!this.placementDirty) return
    this.placementDirty = false
    await this.primary.setMeta(PLACEMENT_META, JSON.stringify(Object.fromEntries([...this.placed].sort())))
  }

  // --- reads and writes by collection --------------------------------------------------------

  async getMeta (key: string): Promise<string | undefined> { return await this.primary.getMeta(key) }
  async setMeta (key: string, value: string): Promise<void> { await this.primary.setMeta(key, value) }
  async heads (): Promise<LogHead[]> { return await this.primary.heads() }
  async hasEntries (cids: readonly Uint8Array[]): Promise<Set<string>> { return await this.primary.hasEntries(cids) }
  async getEntry (cid: Uint8Array): Promise<Uint8Array | undefined> { return await this.primary.getEntry(cid) }
  async getEntryAt (author: string, seq: number): Promise<Uint8Array | undefined> { return await this.primary.getEntryAt(author, seq) }
  async entrySignature (cid: Uint8Array): Promise<Uint8Array | undefined> { return await this.primary.entrySignature(cid) }
  async setEntrySignature (cid: Uint8Array, sig: Uint8Array): Promise<void> { await this.primary.setEntrySignature(cid, sig) }
  async entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: ReadLimits): Promise<{ entries: StoredEntry[], next: number | undefined }> { return await this.primary.entriesNotIn(have, after, limits) }
  async pendingEntries (after: number, limit: number): Promise<StoredEntry[]> { return await this.primary.pendingEntries(after, limit) }
  async quarantine (author: string, afterSeq: number): Promise<number> { return await this.primary.quarantine(author, afterSeq) }
  async yjsUpdates (doc: string): Promise<Array<{ id: number, data: Uint8Array }>> { return await this.primary.yjsUpdates(doc) }
  async compactYjs (doc: string, merged: Uint8Array, upToId: number): Promise<void> { await this.primary.compactYjs(doc, merged, upToId) }
  async scanEntries (after: number, limit: number, options?: { applied?: boolean }): Promise<StoredEntry[]> { return await this.primary.scanEntries(after, limit, options) }
  async entryCount (): Promise<number> { return await this.primary.entryCount() }
  async controlRecords (): Promise<ControlRecord[]> { return await this.primary.controlRecords() }
  async appliedPosition (): Promise<number> { return await this.primary.appliedPosition() }

  /** Materialises items, each op in the provider of its collection. */
  async materialize (items: readonly MaterializeItem[], options: { upTo?: number, replay?: boolean } = {}): Promise<DocChange[]> {
    DataRouter.check(items)
    const byStore = new Map<string, MaterializeItem[]>([[PRIMARY, []]])
    for (const item of items) {
      const { local, routed } = this.split(item.ops)
      if (local.length > 0) (byStore.get(PRIMARY) as MaterializeItem[]).push({ ...item, ops: local })
      for (const [target, ops] of routed) {
        let b = byStore.get(target)
        if (b === undefined) byStore.set(target, b = [])
        b.push({ ...item, ops })
      }
    }
    const top = options.replay === true ? (options.upTo ?? 0) : Math.max(options.upTo ?? 0, ...items.map(i => i.pos))
    const changes: DocChange[] = []
    for (const [name, store] of [[PRIMARY, this.primary] as const, ...this.providers]) {
      if (!materializes(store)) continue
      changes.push(...await store.materialize(byStore.get(name) ?? [], { ...options, upTo: top }))
    }
    return changes
  }

  async writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]> {
    if (!this.seen.has(collection)) this.see(collection)
    const changes = await this.storeOf(collection).writeLocal(collection, writes)
    await this.savePlacement()
    return changes
  }

  /** A collection seen for the first time: it lives where its route puts it now. */
  private see (collection: string): void {
    this.seen.add(collection)
    if (!this.placed.has(collection)) {
      this.placed.set(collection, this.providerOf(collection))
      this.placementDirty = true
    }
  }

  /** Whether a collection (storage name) is known to hold data, here or in a provider. */
  holds (collection: string): boolean {
    return this.seen.has(collection)
  }

  /** Every collection some store holds (stale copies included), and remembers them. */
  async knownCollections (): Promise<string[]> {
    for (const store of [this.primary, ...this.providers.values()]) for (const c of await store.collections()) this.seen.add(c.name)
    return [...this.seen].sort()
  }

  async getDocument (collection: string, id: string): Promise<StoredDoc | undefined> { return await this.storeOf(collection).getDocument(collection, id) }
  async find (collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>> { return await this.storeOf(collection).find(collection, query) }
  async count (collection: string, filter: Filter | undefined): Promise<number> { return await this.storeOf(collection).count(collection, filter) }
  async ensureIndex (collection: string, path: FieldPath): Promise<void> { await this.storeOf(collection).ensureIndex(collection, path) }

  async dropCollection (collection: string): Promise<void> {
    const store = this.storeOf(collection)
    if (!materializes(store)) throw new ProviderCapabilityError(`provider ${this.providerOf(collection)} (${store.kind}) cannot drop collections`)
    await store.dropCollection(collection)
  }

  /** Collections of every provider, each listed where it is routed (stale copies left out). */
  async collections (): Promise<Array<CollectionInfo & { provider: string }>> {
    const out: Array<CollectionInfo & { provider: string }> = []
    for (const [name, store] of [[PRIMARY, this.primary] as const, ...this.providers, ...[...this.adopted.values()].map(a => [a.name, a.store] as const)]) {
      for (const c of await store.collections()) if (this.providerOf(c.name) === name) out.push({ ...c, provider: name })
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async collectionDigests (): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (const [name, store] of [[PRIMARY, this.primary] as const, ...this.providers]) {
      if (name !== PRIMARY && !materializes(store)) continue
      for (const [c, d] of await (store as MaterializingStore).collectionDigests()) if (this.providerOf(c) === name) out.set(c, d)
    }
    return out
  }

  async stateDigest (): Promise<string> {
    return combineDigests(await this.collectionDigests())
  }

  // --- search, by collection -----------------------------------------------------------------

  private searchStores (): Array<[string, SearchStore]> {
    return [[PRIMARY, this.primary] as [string, SearchStore], ...[...this.providers].filter((e): e is [string, RoutedStore & SearchStore] => searches(e[1]))]
  }

  async collectionSettings (name: string): Promise<CollectionSettings | undefined> {
    const store = this.storeOf(name)
    return searches(store) ? await store.collectionSettings(name) : undefined
  }

  async setCollectionSettings (name: string, settings: CollectionSettings | undefined): Promise<void> { await this.searchOf(name).setCollectionSettings(name, settings) }

  async indexQueue (limit: number, collection?: string): Promise<IndexTask[]> {
    if (collection !== undefined) {
      const store = this.storeOf(collection)
      return searches(store) ? await store.indexQueue(limit, collection) : []
    }
    const out: IndexTask[] = []
    for (const [name, store] of this.searchStores()) {
      if (out.length >= limit) break
      for (const t of await store.indexQueue(limit - out.length)) if (this.providerOf(t.collection) === name) out.push(t)
    }
    return out
  }

  async indexQueueCount (collection?: string): Promise<number> {
    if (collection !== undefined) {
      const store = this.storeOf(collection)
      return searches(store) ? await store.indexQueueCount(collection) : 0
    }
    let n = 0
    for (const [, store] of this.searchStores()) n += await store.indexQueueCount()
    return n
  }

  async requeueCollection (collection: string): Promise<number> { return await this.searchOf(collection).requeueCollection(collection) }
  async indexedChunks (collection: string, id: string): Promise<Array<{ text: string, embedder: string }>> { return await this.searchOf(collection).indexedChunks(collection, id) }

  async embeddersOf (collection: string): Promise<string[]> {
    const store = this.storeOf(collection)
    return searches(store) ? await store.embeddersOf(collection) : []
  }

  async applyIndexUpdates (updates: readonly IndexUpdate[]): Promise<VectorChanges> {
    const groups = new Map<string, IndexUpdate[]>()
    for (const u of updates) {
      const name = this.providerOf(u.collection)
      let g = groups.get(name)
      if (g === undefined) groups.set(name, g = [])
      g.push(u)
    }
    const added: Array<VectorChanges['added'][number]> = []
    const removed: Array<VectorChanges['removed'][number]> = []
    for (const group of groups.values()) {
      const r = await this.searchOf((group[0] as IndexUpdate).collection).applyIndexUpdates(group)
      added.push(...r.added)
      removed.push(...r.removed)
    }
    return { added, removed }
  }

  async chunkStats (collection: string, embedder: string): Promise<{ count: number, maxRid: number, sumRid: number }> { return await this.searchOf(collection).chunkStats(collection, embedder) }
  async textSearch (collection: string, terms: readonly string[], k: number, filter: Filter | undefined): Promise<TextHit[]> { return await this.searchOf(collection).textSearch(collection, terms, k, filter) }
  async vectorSearch (collection: string, embedder: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }>> { return await this.searchOf(collection).vectorSearch(collection, embedder, vector, k, filter) }
  async vectorsOf (collection: string, embedder: string, after: number, limit: number): Promise<Array<{ rid: number, id: string, vector: Float32Array }>> { return await this.searchOf(collection).vectorsOf(collection, embedder, after, limit) }
  async chunkDocs (collection: string, rids: readonly number[]): Promise<Map<number, string>> { return await this.searchOf(collection).chunkDocs(collection, rids) }

  async checkIntegrity (): Promise<string[]> {
    const out = await this.primary.checkIntegrity()
    for (const [name, store] of this.providers) for (const p of await store.checkIntegrity()) out.push(`${name}: ${p}`)
    return out
  }

  /** Records the log position every routed provider is up to, then closes them all. */
  async close (): Promise<void> {
    this.closing = true
    for (const a of this.adopted.values()) await a.store.close()
    if (this.retry !== undefined) clearTimeout(this.retry)
    await this.committing
    await this.savePlacement().catch(() => undefined)
    for (const [name, store] of this.providers) {
      // a provider that missed hand-overs keeps its own position: it replays from there
      if (materializes(store) && this.lastPos > 0 && !this.behind.has(name) && !this.replayFrom.has(name)) await store.materialize([], { upTo: this.lastPos }).catch(() => undefined)
      await store.close()
    }
    await this.primary.close()
  }
}
