/**
 * The storage provider contract: where a node keeps its log and the documents materialised from
 * it. The SQLite provider (storage/sqlite/) is the embedded default; other providers implement
 * the same contract and run the same compliance suite (test/storage-compliance.ts).
 *
 * A provider owns durability and atomicity: one `commit` persists a batch of entries together
 * with everything they change, or nothing at all.
 */
import type { DataOp, DeviceIdLike, JsonObject, Stamp } from './types.js'
import type { NormalisedQuery, Filter, FieldPath } from './query.js'

/** A membership or key record materialised from a control entry. */
export interface ControlRecord {
  readonly kind: 'cert' | 'revoke' | 'epoch'
  /** Identifies the record within its kind (a DeviceId, an epoch id). */
  readonly key: string
  readonly bytes: Uint8Array
}

/** A verified entry to persist, with the operations it carries. */
export interface CommitItem {
  /** CID bytes of the entry. */
  readonly cid: Uint8Array
  readonly author: DeviceIdLike
  readonly seq: number
  /** The encoded entry. */
  readonly bytes: Uint8Array
  /** LWW stamp of its ops (clock + author). */
  readonly stamp: Stamp
  /** Decrypted data ops. */
  readonly ops: readonly DataOp[]
  /** Membership and key records it carries. */
  readonly control: readonly ControlRecord[]
  /** The author's chain signature on this entry, when one covers the chain up to it (crdt/entry.ts). */
  readonly sig?: Uint8Array | undefined
  /**
   * True when the payload could not be opened yet (its epoch key is not on this device): the
   * entry is stored and materialised later with {@link StorageProvider.applyPending}.
   */
  readonly pending?: boolean
  /**
   * True for an entry of a revoked device beyond what its revocation keeps: stored so that
   * every log stays causally complete, never materialised.
   */
  readonly quarantined?: boolean
}

/** Ops of a stored pending entry, now opened. */
export interface PendingApply {
  readonly cid: Uint8Array
  /** Its log position (from pendingEntries): the DataRouter hands routed ops over with it. */
  readonly pos?: number
  readonly stamp: Stamp
  readonly ops: readonly DataOp[]
}

/** A document whose visible state a commit changed. */
export interface DocChange {
  readonly collection: string
  readonly id: string
  /** Visible fields before the commit, or null when the document did not exist. */
  readonly before: JsonObject | null
  /** Visible fields after the commit, or null when it no longer exists. */
  readonly after: JsonObject | null
}

/** What a commit did. */
export interface CommitResult {
  /** Log positions assigned to the items, in order (an item already held gets -1). */
  readonly positions: readonly number[]
  readonly changes: readonly DocChange[]
  /** Yjs document updates the commit stored, in order. */
  readonly yjs: ReadonlyArray<{ readonly doc: string, readonly update: Uint8Array }>
}

/** An author's latest contiguous entry. */
export interface LogHead {
  readonly author: DeviceIdLike
  readonly seq: number
  readonly cid: Uint8Array
}

/** One stored entry, in log order. */
export interface StoredEntry {
  readonly pos: number
  readonly cid: Uint8Array
  readonly author: DeviceIdLike
  readonly seq: number
  readonly bytes: Uint8Array
  /** The author's chain signature on this entry, when it is stored (entriesNotIn and scanEntries). */
  readonly sig?: Uint8Array | null
}

/** A materialised document with its merge metadata. */
export interface StoredDoc {
  readonly body: JsonObject | null
  /** Stamp metadata (see crdt/lww.ts `DocRow`). */
  readonly meta: string
}

/** A collection and its live document count. */
export interface CollectionInfo {
  readonly name: string
  readonly count: number
  readonly indexes: readonly string[]
  /** Device-local: kept on this device only, never in the log. */
  readonly local?: boolean
}

/**
 * Storage names of device-local collections start with this (a character collection names in
 * the log cannot start with): they are written with `writeLocal`, never in the log, and
 * rematerialisation and state digests leave them alone.
 */
export const LOCAL_PREFIX = '~'

/** System collections that are searched (agent memory); other names starting with `_` (profile, …) are never indexed. */
export const SEARCHED_SYSTEM_COLLECTIONS: readonly string[] = ['_memory']

/** True when a collection's documents go to the search indexes. */
export function isSearchIndexed (collection: string): boolean {
  return !collection.startsWith('_') || SEARCHED_SYSTEM_COLLECTIONS.includes(collection)
}

/** The same test in SQL, on a column named `collection` (PostgreSQL and SQLite). */
export const SEARCH_INDEXED_SQL = `(substr(collection, 1, 1) <> '_' OR collection IN (${SEARCHED_SYSTEM_COLLECTIONS.map(c => `'${c}'`).join(', ')}))`

/** Caps for reading a slice of the log. */
export interface ReadLimits {
  readonly maxEntries: number
  readonly maxBytes: number
}

/** How a collection is indexed for search on this device (not replicated). */
export interface CollectionSettings {
  /**
   * Fields whose text is indexed and embedded: 'auto' (every top-level string field), a list of
   * field paths, or false (no vectors; full-text search still works on 'auto' fields).
   */
  readonly embed: 'auto' | readonly string[] | false
}

/** A keyword search hit: the provider's score (higher is better) and its relevance in [0, 1] (see {@link StorageProvider.textSearch}). */
export interface TextHit {
  readonly id: string
  readonly score: number
  readonly relevance: number
}

/** BM25's term-frequency saturation (k1) and length normalisation (b), as SQLite's FTS5 uses them. */
export const BM25_K1 = 1.2
export const BM25_B = 0.75

/** BM25's IDF of a term found in `n` of `total` documents, as FTS5 computes it (never below 1e-6). */
export function bm25Idf (total: number, n: number): number {
  return Math.max(1e-6, Math.log((total - n + 0.5) / (n + 0.5)))
}

/** A document whose search index is stale. */
export interface IndexTask {
  readonly collection: string
  readonly id: string
  /** Queue version: an update only clears the task when the document did not change since. */
  readonly ver: number
}

/** The new search index of one document. */
export interface IndexUpdate extends IndexTask {
  /** Full text for keyword search; undefined removes the document from it. */
  readonly text: string | undefined
  /** Chunks with their vectors (replacing all previous ones); empty removes them; undefined keeps them. */
  readonly chunks?: ReadonlyArray<{ readonly text: string, readonly vector: Float32Array }>
  /** The embedder that made the vectors (required when there are chunks). */
  readonly embedder?: { readonly id: string, readonly dims: number }
}

/** Vector rows added and removed by index updates. */
export interface VectorChanges {
  readonly added: ReadonlyArray<{ readonly rid: number, readonly collection: string, readonly embedder: string, readonly vector: Float32Array }>
  readonly removed: ReadonlyArray<{ readonly rid: number, readonly collection: string, readonly embedder: string }>
}

/** What every store has: a name for messages and a way to let go. */
export interface Store {
  /** Provider kind, e.g. 'sqlite', 'postgres', 'file'. */
  readonly kind: string
  /** Where the data lives (file path, connection string without secrets). */
  readonly location: string
  /**
   * Deep integrity check of the store itself (not the log's signatures): its problems, one per
   * line, or none. Damage that stops the check is one more problem, not an exception.
   */
  checkIntegrity (): Promise<string[]>
  /** Releases every resource. Idempotent. */
  close (): Promise<void>
}

/**
 * The log role: the signed entries (the source of truth), heads, membership and key records,
 * node settings. A log store also materialises what it commits into its own documents (one
 * transaction), so it is always a {@link DocumentStore} too.
 */
export interface LogStore extends Store {
  /** Node-level settings (identity binding, options), as text. */
  getMeta (key: string): Promise<string | undefined>
  setMeta (key: string, value: string): Promise<void>

  /** Every author's latest contiguous entry. */
  heads (): Promise<LogHead[]>
  /** Which of these CIDs the log holds (CID bytes in, their base64 out). */
  hasEntries (cids: readonly Uint8Array[]): Promise<Set<string>>
  /** Persists entries and materialises their ops in one transaction. */
  commit (items: readonly CommitItem[]): Promise<CommitResult>
  /** One entry's bytes by CID. */
  getEntry (cid: Uint8Array): Promise<Uint8Array | undefined>
  /** The chain signature stored on an entry, if any. */
  entrySignature (cid: Uint8Array): Promise<Uint8Array | undefined>
  /** Stores the author's chain signature on an entry the log holds (a local run is signed after its commit). */
  setEntrySignature (cid: Uint8Array, sig: Uint8Array): Promise<void>
  /** One entry's bytes by author and seq. */
  getEntryAt (author: string, seq: number): Promise<Uint8Array | undefined>
  /**
   * Entries that a peer with version vector `have` lacks, in log (causal) order, starting after
   * log position `after`; at most `limits`. `next` is the position to continue from, or undefined
   * when nothing is left.
   */
  entriesNotIn (have: ReadonlyMap<string, number>, after: number, limits: ReadLimits): Promise<{ entries: StoredEntry[], next: number | undefined }>
  /** Stored entries whose payload is not opened yet, in log order after position `after`. */
  pendingEntries (after: number, limit: number): Promise<StoredEntry[]>
  /** Materialises opened pending entries and marks them applied, in one transaction. */
  applyPending (items: readonly PendingApply[]): Promise<CommitResult>
  /**
   * Marks an author's entries after `afterSeq` as quarantined (never materialised). Returns how
   * many of them had been materialised already.
   */
  quarantine (author: string, afterSeq: number): Promise<number>
  /**
   * Rebuilds every materialised document and Yjs update from the log, in one transaction:
   * `open` (synchronous) gives the stamp and ops of each materialised entry, or undefined to
   * skip it.
   */
  rematerialize (open: (entry: StoredEntry) => { stamp: Stamp, ops: readonly DataOp[] } | undefined): Promise<void>
  /**
   * Entries in log order after position `after` (for verification and export); with `applied`,
   * only those whose ops are materialised (neither pending nor quarantined).
   */
  scanEntries (after: number, limit: number, options?: { readonly applied?: boolean }): Promise<StoredEntry[]>
  /** Number of entries in the log. */
  entryCount (): Promise<number>
  /** Every membership and key record. */
  controlRecords (): Promise<ControlRecord[]>
  /** Stored updates of a Yjs document, oldest first. */
  yjsUpdates (doc: string): Promise<Array<{ readonly id: number, readonly data: Uint8Array }>>
  /** Replaces a Yjs document's updates up to `upToId` by one merged update. */
  compactYjs (doc: string, merged: Uint8Array, upToId: number): Promise<void>
  /**
   * Canonical digest of every replicated document's merge state (device-local collections
   * left out): equal on two stores that materialised the same entries, in any order
   * ({@link combineDigests} of {@link DocumentStore.collectionDigests}).
   */
  stateDigest (): Promise<string>
}

/** The document role: materialised documents, their queries and indexes. */
export interface DocumentStore extends Store {
  /**
   * Writes documents of a device-local collection (storage name starting with
   * {@link LOCAL_PREFIX}) without a log entry, in one transaction: a body replaces the
   * document, null deletes it. Returns what changed.
   */
  writeLocal (collection: string, writes: ReadonlyArray<{ readonly id: string, readonly body: JsonObject | null }>): Promise<DocChange[]>
  /** One document with its merge metadata. */
  getDocument (collection: string, id: string): Promise<StoredDoc | undefined>
  /** Documents matching a query. */
  find (collection: string, query: NormalisedQuery): Promise<Array<{ id: string, body: JsonObject }>>
  /** Number of documents matching a filter. */
  count (collection: string, filter: Filter | undefined): Promise<number>
  /** Every collection with at least one document or index. */
  collections (): Promise<CollectionInfo[]>
  /** Creates (if missing) an index on a field path of a collection. */
  ensureIndex (collection: string, path: FieldPath): Promise<void>
  /** Digest of each replicated (not device-local) collection's merge state (storage/digest.ts). */
  collectionDigests (): Promise<Map<string, string>>
}

/** Ops of one log entry to materialise, at its log position. */
export interface MaterializeItem {
  readonly pos: number
  readonly stamp: Stamp
  readonly ops: readonly DataOp[]
}

/**
 * A document store that materialises log ops it is handed (a collection routed to it by the
 * DataRouter while the log stays in the primary storage). It records the log position it has
 * applied in the same transaction as the documents, so replaying from the log after a crash
 * applies nothing twice.
 */
export interface MaterializingStore extends DocumentStore {
  /** The log position up to which this store has applied what was routed to it (0: none). */
  appliedPosition (): Promise<number>
  /**
   * Applies the ops of items past the applied position, then records the largest item position
   * (or `upTo`, when larger) as applied, in one transaction. With `replay`, applies every item
   * whatever its position (entries opened late, catch-ups; LWW merges make that safe) and moves
   * the position only to `upTo`. Returns what changed.
   */
  materialize (items: readonly MaterializeItem[], options?: { readonly upTo?: number, readonly replay?: boolean }): Promise<DocChange[]>
  /** Removes a collection: its documents, indexes, settings and search rows. */
  dropCollection (collection: string): Promise<void>
}

/** The search role: the index queue, keyword and vector indexes of documents. */
export interface SearchStore extends Store {
  /** A collection's index settings (undefined: defaults). */
  collectionSettings (name: string): Promise<CollectionSettings | undefined>
  /** Sets (or with undefined resets) a collection's index settings. */
  setCollectionSettings (name: string, settings: CollectionSettings | undefined): Promise<void>
  /** Documents waiting to be indexed, oldest first. */
  indexQueue (limit: number, collection?: string): Promise<IndexTask[]>
  /** How many documents wait to be indexed. */
  indexQueueCount (collection?: string): Promise<number>
  /** Queues every document of a collection (after a settings or model change). */
  requeueCollection (collection: string): Promise<number>
  /** Chunks indexed for a document, with the embedder that made them. */
  indexedChunks (collection: string, id: string): Promise<Array<{ readonly text: string, readonly embedder: string }>>
  /** Embedders whose vectors a collection holds. */
  embeddersOf (collection: string): Promise<string[]>
  /**
   * Writes documents' new indexes and clears their queue tasks, in one transaction. Returns the
   * vector rows it added and removed (so that in-memory ANN indexes can follow).
   */
  applyIndexUpdates (updates: readonly IndexUpdate[]): Promise<VectorChanges>
  /** Count, largest and sum of the chunk row ids of a collection and embedder (an ANN index checks its file against it). */
  chunkStats (collection: string, embedder: string): Promise<{ count: number, maxRid: number, sumRid: number }>
  /**
   * Keyword search for documents holding any of `terms` (lower-case words of letters and
   * digits), best first by the provider's score (BM25 on SQLite); higher is better. Each hit's
   * `relevance` is its BM25 over the most any document could score for these terms (the sum of
   * the terms' IDF x (k1 + 1)), in [0, 1]: comparable across queries, collections and devices.
   */
  textSearch (collection: string, terms: readonly string[], k: number, filter: Filter | undefined): Promise<TextHit[]>
  /**
   * Exact nearest documents to `vector` (unit length) by their best chunk, cosine distance,
   * among documents matching `filter`.
   */
  vectorSearch (collection: string, embedder: string, vector: Float32Array, k: number, filter: Filter | undefined): Promise<Array<{ id: string, distance: number }>>
  /** Every stored vector of a collection and embedder, by chunk (for building ANN indexes). */
  vectorsOf (collection: string, embedder: string, after: number, limit: number): Promise<Array<{ rid: number, id: string, vector: Float32Array }>>
  /** Document ids of a collection's chunk row ids (ANN results back to documents). */
  chunkDocs (collection: string, rids: readonly number[]): Promise<Map<number, string>>
}

/**
 * A provider that serves every role, so a node can run wholly on it (SQLite, PostgreSQL). The
 * file provider serves documents only.
 */
export interface StorageProvider extends LogStore, MaterializingStore, SearchStore {}

export type { Filter, FieldPath }
