/**
 * The console's view of the local API: the parameters and results of the methods it calls, as
 * the daemon's method table (node/daemon/rpc.ts) and the node's types define them. Kept apart
 * from the node's sources so the browser bundle never pulls in server code.
 */

/** What a collection may be called (the server's rule: crdt/ops.ts `COLLECTION_NAME`). */
export const COLLECTION_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/

/** A JSON value. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json }

/** A JSON object. */
export interface JsonObject { [key: string]: Json }

/** A stored document: its fields and its id. */
export type Doc = JsonObject & { _id: string }

/** `GET /ui/api/session`: who this console talks to. */
export interface SessionInfo {
  readonly deviceId: string
  readonly deviceName: string
  readonly version: string
}

/** A connected peer (transport/swarm.ts `PeerInfo`, plus what the peer holds). */
export interface PeerInfo {
  readonly device: string
  readonly name?: string
  readonly verified: boolean
  readonly addrs: readonly string[]
  /** Last completed pull, ms since the epoch. */
  readonly lastSync?: number
  readonly syncing: boolean
  /** True when the connection goes through a relay. */
  readonly relayed: boolean
  /** The relay of a relayed connection. */
  readonly relay?: string
  /** The peer's version vector, as last heard. */
  readonly holds?: Readonly<Record<string, number>>
}

/** A pull in progress. */
export interface SyncState {
  readonly peer: string
  readonly received: number
  readonly total: number
}

/** A collection with its document count (storage `CollectionInfo`). */
export interface CollectionInfo {
  readonly name: string
  readonly count: number
  readonly indexes: readonly string[]
  /** Kept on this device only. */
  readonly local?: boolean
}

/** `status` (node `NodeStatus`, plus daemon facts). */
export interface NodeStatus {
  readonly deviceId: string
  readonly swarmId: string
  readonly deviceName: string
  readonly dir: string
  readonly storage: { readonly kind: string, readonly location: string }
  readonly entries: number
  readonly versionVector: Readonly<Record<string, number>>
  readonly collections: readonly CollectionInfo[]
  readonly pendingEntries: number
  readonly confirmedSeq: number
  readonly revoked?: { readonly at: string, readonly by: string, readonly after: number }
  readonly network?: {
    readonly multiaddrs: readonly string[]
    /** How other devices can reach this one. */
    readonly reachability: 'public' | 'relayed' | 'private' | 'local'
    readonly peers: readonly PeerInfo[]
    readonly syncing: readonly SyncState[]
  }
  readonly running?: boolean
  readonly pid?: number
  readonly uptime?: number
}

/** A storage provider (node `ProviderInfo`). */
export interface ProviderInfo {
  readonly name: string
  readonly kind: string
  readonly location: string
  readonly healthy: boolean
  readonly rttMs: number
  readonly error?: string
  readonly pool?: { readonly size: number, readonly inUse: number, readonly idle: number, readonly waiting: number, readonly max: number }
  readonly routes: readonly string[]
}

/** A device of the swarm (node/devices.ts `DeviceInfo`). */
export interface DeviceInfo {
  readonly device: string
  readonly name: string
  readonly self: boolean
  readonly issuer: string
  readonly certified: string
  readonly revoked: boolean
  readonly revokedAt?: string
  readonly online: boolean
  readonly lastSeen?: string
}

/** An invite (node/pairing.ts `InviteInfo`). */
export interface InviteInfo {
  readonly code: string
  readonly expires: string
  readonly inviter: string
  readonly addrs: readonly string[]
}

/** Search modes. */
export type SearchMode = 'hybrid' | 'text' | 'vector'

/** One local search hit (node/search.ts `SearchHit`). */
export interface SearchHit {
  readonly id: string
  readonly score: number
  readonly doc: Doc
}

/** One swarm search hit (node/swarm-search.ts `SwarmHit`). */
export interface SwarmHit extends SearchHit {
  readonly device: string
  readonly deviceName: string
  readonly local: boolean
}

/** How one device answered a swarm search. */
export interface DeviceAnswer {
  readonly device: string
  readonly name: string
  readonly status: 'ok' | 'timeout' | 'error'
  readonly ms: number
  readonly count: number
  readonly pending?: number
  readonly error?: string
  readonly self: boolean
}

/** Memory kinds. */
export type MemoryKind = 'context' | 'knowledge'

/** A memory (node/memory/memory.ts `MemoryRecord`). */
export interface MemoryRecord {
  readonly id: string
  readonly kind: MemoryKind
  readonly content: string
  readonly entities: readonly string[]
  readonly attribute?: string
  readonly agent?: string
  readonly session?: string
  readonly source?: string
  readonly provenance: readonly string[]
  readonly recordedAt: string
  readonly validFrom?: string
  readonly invalidFrom?: string
  readonly invalidatedBy?: string
  readonly mergedInto?: string
  readonly expiresAt?: string
  readonly recalls?: number
  readonly repeats?: number
  readonly promotedTo?: string
}

/** One recalled memory. */
export interface RecallHit {
  readonly memory: MemoryRecord
  readonly score: number
  readonly device?: string
}

/** One version of a memory: what changed and why. */
export interface MemoryVersion {
  readonly at: string
  readonly change: string
  readonly reason: string
  readonly content?: string
  readonly device?: string
  readonly other?: string
}

/** What a consolidation did, or would do with `dryRun`. */
export interface ConsolidationResult {
  readonly dryRun: boolean
  readonly decider: string
  readonly expired: readonly string[]
  readonly promotions: ReadonlyArray<{ readonly fact: string, readonly content: string, readonly from: readonly string[] }>
  readonly merges: ReadonlyArray<{ readonly into: string, readonly from: string, readonly content: string }>
  readonly invalidations: ReadonlyArray<{ readonly id: string, readonly by: string, readonly at: string, readonly content: string }>
  readonly examined: number
  readonly ms: number
}

/** A find query (storage/query.ts `FindQuery`). */
export interface FindQuery {
  readonly where?: JsonObject
  readonly orderBy?: string | readonly string[]
  readonly limit?: number
  readonly offset?: number
}

interface SearchParams {
  readonly collection: string
  readonly text: string
  readonly k?: number
  readonly where?: JsonObject
  readonly mode?: SearchMode
}

/** The methods the console calls: their parameters and results. */
export interface Methods {
  status: { params: Record<string, never>, result: NodeStatus }
  collections: { params: Record<string, never>, result: CollectionInfo[] }
  find: { params: { collection: string, query?: FindQuery }, result: Doc[] }
  count: { params: { collection: string, where?: JsonObject }, result: number }
  get: { params: { collection: string, id: string }, result: Doc }
  put: { params: { collection: string, doc: JsonObject }, result: { id: string, seq: number } }
  delete: { params: { collection: string, id: string }, result: unknown }
  devices: { params: Record<string, never>, result: DeviceInfo[] }
  revoke: { params: { device: string }, result: { device: string, epoch: number, keptUpTo: number } }
  invite: { params: { ttl?: number }, result: InviteInfo }
  peers: { params: Record<string, never>, result: { connected: PeerInfo[], online: boolean } }
  providers: { params: Record<string, never>, result: ProviderInfo[] }
  indexStatus: { params: { collection?: string }, result: { pending: number } }
  search: { params: SearchParams, result: { hits: SearchHit[], pending: number } }
  swarmSearch: { params: SearchParams & { timeout?: number }, result: { hits: SwarmHit[], devices: DeviceAnswer[], ms: number, embedMs: number, online: boolean } }
  profileGet: { params: Record<string, never>, result: JsonObject }
  profileSet: { params: { fields: JsonObject }, result: JsonObject }
  memoryRecall: { params: { query: string, k?: number, asOf?: string, swarm?: boolean }, result: RecallHit[] }
  memoryList: { params: { limit?: number, kind?: MemoryKind }, result: MemoryRecord[] }
  memoryHistory: { params: { id: string }, result: MemoryVersion[] }
  memoryConsolidate: { params: { dryRun?: boolean }, result: ConsolidationResult }
}

/** A method the console calls. */
export type MethodName = keyof Methods

/** Parameters of a method. */
export type ParamsOf<M extends MethodName> = Methods[M]['params']

/** Result of a method. */
export type ResultOf<M extends MethodName> = Methods[M]['result']

/** Payloads of the named Server-Sent Events of `GET /ui/events`. */
export interface ServerEvents {
  change: { origin: 'local' | 'remote', changes: ReadonlyArray<{ collection: string, id: string, type: 'added' | 'changed' | 'removed' }> }
  peer: { type: 'connect' | 'disconnect', device: string, name?: string }
  sync: { peer: string, received: number, total: number, done: boolean }
  index: { collection: string, done: number, pending: number }
  devices: Record<string, never>
  revoked: { at: string, by: string, after: number }
  /** Counts, or the lists themselves (as a consolidation result has them). */
  memory: { [K in 'promotions' | 'merges' | 'invalidations' | 'expired' | 'examined']?: number | readonly unknown[] }
}

/** Name of a server event. */
export type ServerEventName = keyof ServerEvents
