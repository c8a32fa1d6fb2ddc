/**
 * PeakDB's programmatic API.
 *
 * @example
 * ```ts
 * import { PeakNode } from 'peakdb'
 * const node = await PeakNode.open({ dir: './data' })
 * ```
 */
// first: libp2p 3 needs Promise.withResolvers, which Node 20 lacks
import './polyfills.js'

export { PeakNode, type PeakNodeOptions, type NodeStatus, type PeakNodeEvents, type ProviderInfo } from './peak-node.js'
export type { StorageSpec, ProviderSpec } from './storage-binding.js'
export { Collection, MAX_DOC_BYTES, MAX_BATCH_DOCS, type Doc, type WriteResult, type BatchWriteResult, type DeleteResult, type CollectionOptions, type AbortOptions } from './collection.js'
export { StoredRecordError, type ChangeEvent, type VerifyReport, type VerifyProblem } from './log.js'
export { LiveQuery, type LiveEvent, type LiveChange, type Unsubscribe } from './live-query.js'
export type { Confirmation } from './confirmations.js'
export type { ReplicationOptions } from './replicator.js'
export type { SyncProgress, PeerInfo } from '../transport/index.js'
export * from './errors.js'
export { defaultDataDir, type LockOptions, type LockKind, type LockHolder } from './data-dir.js'
export type { FindQuery, Where, Condition } from '../storage/index.js'
export {
  Migrator, FileMigrationSource, newMigrationFile, openMigrationDriver, MigrationSourceError, MigrationFailedError, DestructiveMigrationError, MigrationStateError,
  type Migration, type MigrationDb, type RebuildSpec, type ExecuteOptions, type MigrationPlan, type MigrationStatus, type PlannedStatement, type MigrationTarget, type MigrationDriver, type ApplyOptions
} from '../storage/migrate/index.js'
export type { Embedder, EmbedOptions } from './embedding/embedder.js'
export { EmbedderError } from './embedding/embedder.js'
export { UseLiteEmbedder, USE_LITE_ID } from './embedding/use-lite.js'
export { createHttpEmbedder, type HttpEmbedderOptions } from './embedding/http-embedder.js'
export { SwarmSearch, mergeAnswers, type SwarmSearchQuery, type SwarmSearchResult, type SwarmSearchEvent, type SwarmHit, type DeviceAnswer } from './swarm-search.js'
export { Memory, CONTEXT_COLLECTION, namesIn, type MemoryKind, type MemoryScope, type RememberOptions, type MemoryRecord, type RecallOptions, type RecallHit, type MemoryChange, type MemoryVersion, type ListOptions, type ConsolidateOptions, type ConsolidationResult, type MemoryOptions } from './memory/memory.js'
export { RuleDecider, LlmDecider, MemoryDeciderError, type MemoryDecider, type FactPair, type FactView, type Decision, type RuleDeciderOptions, type LlmDeciderOptions } from './memory/decider.js'
export type { IndexProgress } from './embedding/indexer.js'
export type { SearchQuery, SearchHit, SearchResults, SearchMode } from './search.js'
export { StorageCorruptError, SchemaVersionError, InvalidQueryError, StorageClosedError, StorageUnavailableError, StorageBusyError, CrossProviderError, ProviderCapabilityError, ColumnTypeError } from '../storage/errors.js'
