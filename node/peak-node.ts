/**
 * PeakNode: the composition root. It owns a data dir (lock, keystore, database), wires identity,
 * log and storage together, and hands out collections.
 */
import { EventEmitter } from 'node:events'
import { existsSync, rmSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import {
  createEpoch, createSigner, deriveUserRoot, deviceIdFromPublicKey, generateRecoveryPhrase, generateSecretKey,
  issueCertificate, keystoreIsProtected, normaliseDeviceName, parseRecoveryPhrase, publicKeyOf, readKeystore, sealingSecretKeyOf, successorKeystore, writeKeystore,
  type DeviceId, type KeystoreData, type RetiredDevice, type SwarmId
} from '../identity/index.js'
import { docStateFromRow, isCollectionName, vectorToJson, type CollectionName, type DocRow } from '../crdt/index.js'
import { DataRouter, LOCAL_PREFIX, PRIMARY, type CollectionInfo, type DocChange, type RoutedStore, type StorageProvider } from '../storage/index.js'
import { canDescribeSchema, type DescribeSchemaOptions, type SchemaDescription } from '../storage/introspect.js'
import { forgetStorage, openProvider, openStorage, recordStorage, resolveStorage, type ProviderSpec, type StorageSpec } from './storage-binding.js'
import { Collection, type CollectionContext, type CollectionOptions } from './collection.js'
import { acquireLock, dataDirPaths, ensureDataDir, type DataDirPaths, type DirLock, type LockOptions } from './data-dir.js'
import { DataDirError, DeviceRevokedError, InvalidCollectionNameError, InvalidOptionError, NodeClosedError, NotInitializedError, NotOnNetworkError } from './errors.js'
import { keystoreFromWelcome, newDevice, Pairing, parseInviteCode, prepareJoinDir } from './pairing.js'
import { Devices } from './devices.js'
import { Profile } from './profile.js'
import { epochOp, Log, type ChangeEvent, type VerifyReport } from './log.js'
import { Confirmations } from './confirmations.js'
import { YDocs } from './ydocs.js'
import { LiveQueries } from './live-query.js'
import { Indexer, type IndexProgress } from './embedding/indexer.js'
import { UseLiteEmbedder } from './embedding/use-lite.js'
import { SwarmSearch } from './swarm-search.js'
import { CONTEXT_COLLECTION, Memory, type MemoryOptions } from './memory/memory.js'
import { DEVICE_METRICS, Placement } from './placement/placement.js'
import { FileIndexer } from './files.js'
import { AnnIndexes } from './embedding/ann-index.js'
import { createLogger } from './logger.js'
import { join } from 'node:path'
import type { Embedder } from './embedding/embedder.js'
import type * as Y from 'yjs'
import type { Replicator, ReplicationOptions } from './replicator.js'
import type { Reachability, SwarmTransport, SyncProgress, Welcome } from '../transport/index.js'

const logger = createLogger('node')

/** Storage meta key listing this device's device-local collections (JSON array). */
const LOCAL_COLLECTIONS_META = 'local-collections'
/** Routes chosen per collection (moveCollection, `collection(name, { provider })`): they win over config routes. */
const CHOSEN_ROUTES_META = 'collection-routes'
/** Where each collection was at the last open: a route changed since moves the collection. */
const PLACEMENT_META = 'collection-placement'
/** Tables adopted as collections: name → { table, provider }. */
const ADOPTED_META = 'adopted-tables'
/** Options of {@link PeakNode.open}. */
export interface PeakNodeOptions {
  /** The data dir (created if missing). */
  readonly dir: string
  /**
   * Restore this identity on first open instead of generating a new recovery phrase. Ignored
   * when the data dir already has an identity.
   */
  readonly recoveryPhrase?: string
  /** Name of this device in the swarm (default: the host name). */
  readonly deviceName?: string
  /** Create an identity when the data dir has none (default true). */
  readonly create?: boolean
  /** 'normal' (default) or 'full' (fsync every commit); see the SQLite provider. */
  readonly durability?: 'normal' | 'full'
  /**
   * Where the log and documents live, chosen at the first open and recorded in the data dir:
   * the embedded SQLite file (default), or a PostgreSQL connection string
   * (`postgres://user@host/db`, or `{ kind: 'postgres', url, schema?, pool? }`). Later opens may
   * omit it; naming another place than the recorded one is refused.
   */
  readonly storage?: StorageSpec
  /**
   * Named providers collections can be routed to (`{ warehouse: { kind: 'postgres', url } }`);
   * the node's own storage is `primary`.
   */
  readonly providers?: Readonly<Record<string, ProviderSpec>>
  /** Collection names, or `prefix*` patterns, to provider names (`{ events: 'warehouse' }`). */
  readonly routes?: Readonly<Record<string, string>>
  /**
   * Join the swarm over libp2p (listen, bootstrap, mDNS, DHT). Without it the node is local only;
   * `startNetwork()` can start it later.
   */
  readonly network?: ReplicationOptions
  /** Other devices that must hold a write before it counts as confirmed (default 1). */
  readonly confirmations?: number
  /**
   * Passphrase of the keystore: opens a protected keystore, and protects a keystore created by
   * this open (scrypt + XChaCha20-Poly1305).
   */
  readonly passphrase?: string
  /**
   * The embedder for search by meaning (default: the offline Universal Sentence Encoder lite,
   * loaded on first use). A function is called once, when vectors are first needed.
   */
  readonly embedder?: Embedder | (() => Promise<Embedder>)
  /** Index saved documents in the background (default true); searches index what they need either way. */
  readonly backgroundIndexing?: boolean
  /** Chunks from which a collection gets in-memory vector indexes (HNSW and int8 scan; default 5000). */
  readonly annMinChunks?: number
  /** HNSW self-checked recall below which a collection's searches scan instead (default 0.9). */
  readonly annMinRecall?: number
  /** Agent memory: context time to live and budget, the consolidation decider (see {@link Memory}). */
  readonly memory?: MemoryOptions
  /** Placement: this device's budget for document bodies (default half the free space of its disk) and a clock. */
  readonly placement?: { readonly budgetBytes?: number, readonly now?: () => number }
  /**
   * How to take the data dir's lock (default: as a long-running owner, failing at once when
   * another process holds it). The CLI opens short-lived commands with `{ kind: 'command' }`,
   * and its daemon waits for them with `waitMs`.
   */
  readonly lock?: LockOptions
}

/** Options of {@link PeakNode.join}. */
export interface JoinOptions extends Omit<PeakNodeOptions, 'recoveryPhrase' | 'create'> {
  /** The invite code from `peakdb pair invite` / `node.pairing.invite()` on a member device. */
  readonly code: string
}

/** What a PostgreSQL store offers for adopting tables. */
type PostgresAdopt = (collection: string, table: string, onIds: (ids: string[]) => void) => Promise<{ store: RoutedStore & { schema: string, table: string }, unwatch: () => void }>

/** What the file provider adds for device-local collections. */
interface PolicyStore {
  setCollectionPolicy (collection: string, policy: { ttlMs?: number | null, maxBytes?: number | null }): Promise<DocChange[]>
  collectionPolicy (collection: string): Promise<{ ttlMs?: number | null, maxBytes?: number | null }>
}

/** A storage provider of the node, as `peakdb providers` shows it. */
export interface ProviderInfo {
  readonly name: string
  readonly kind: string
  /** Where its data lives (no secrets). */
  readonly location: string
  readonly healthy: boolean
  /** Round trip of a small query, ms. */
  readonly rttMs: number
  readonly error?: string
  /** Connection pool, for server providers. */
  readonly pool?: { readonly size: number, readonly inUse: number, readonly idle: number, readonly waiting: number, readonly max: number }
  /** Routes that name it. */
  readonly routes: readonly string[]
}

/** A snapshot of a node's state. */
export interface NodeStatus {
  readonly deviceId: DeviceId
  readonly swarmId: SwarmId
  readonly deviceName: string
  readonly dir: string
  readonly storage: { readonly kind: string, readonly location: string }
  readonly entries: number
  readonly versionVector: Record<string, number>
  readonly collections: readonly CollectionInfo[]
  /** Entries held whose payload this device cannot open yet (their key was not shared yet). */
  readonly pendingEntries: number
  /** Highest seq of this device held by enough other devices. */
  readonly confirmedSeq: number
  /**
   * DeviceIds this device wrote under before and retired (present when there are any): its
   * database was lost, so it continues under a new DeviceId rather than fork its old chain.
   */
  readonly retiredDevices?: readonly RetiredDevice[]
  /**
   * Present when this device was revoked: when, by whom ('root' or a DeviceId), and the last of
   * its entries the others keep. It then writes nothing and stays off the swarm.
   */
  readonly revoked?: { readonly at: string, readonly by: string, readonly after: number }
  /** Present while the node is on the network. */
  readonly network?: {
    readonly multiaddrs: string[]
    /** How other devices can reach this one: public, relayed, private (LAN or behind a NAT) or local. */
    readonly reachability: Reachability
    readonly peers: ReturnType<Replicator['peers']>
    /** Pulls in progress. */
    readonly syncing: ReturnType<Replicator['syncState']>
  }
}

/** Events of a node. */
export interface PeakNodeEvents {
  /** Documents changed, by a local write or by entries from a peer. */
  change: [ChangeEvent]
  /** Progress of pulling a peer's entries. */
  'sync:progress': [SyncProgress]
  /** The search indexer indexed a batch of documents. */
  'index:progress': [IndexProgress]
  /** A device proved membership and is now a peer. */
  'peer:connect': [{ device: string, name: string }]
  /** A peer disconnected. */
  'peer:disconnect': [{ device: string }]
  /** This device learned that it was revoked (see {@link NodeStatus.revoked}). */
  revoked: [{ at: string, by: string, after: number }]
  /** The swarm's device list changed: a device was certified (joined) or revoked. */
  devices: []
}

/** Opens made by {@link PeakNode.join}: their new database is expected, not a lost one. */
const joinOpens = new WeakSet<PeakNodeOptions>()

/** Removes the keystore and database files of a data dir (an identity nobody saw). */
function removeDataFiles (paths: DataDirPaths): void {
  for (const file of [paths.keystore, paths.database, `${paths.database}-wal`, `${paths.database}-shm`]) rmSync(file, { force: true })
  forgetStorage(paths)
}

function hasData (path: string): boolean {
  return existsSync(path) && statSync(path).size > 0
}

/**
 * A PeakDB node on one data dir.
 *
 * @example
 * ```ts
 * const node = await PeakNode.open({ dir: './data' })   // creates an identity on first open
 * const notes = node.collection('notes')
 * const { id } = await notes.put({ title: 'hi', tags: ['a'] })
 * await notes.find({ where: { tags: 'a' } })
 * await node.close()
 * ```
 */
export class PeakNode extends EventEmitter<PeakNodeEvents> {
  /**
   * The 24-word recovery phrase, present only on the open that created the identity (it is never
   * stored). Show it to the user once.
   */
  readonly recoveryPhrase: string | undefined
  readonly paths: DataDirPaths
  private closed = false
  private readonly collectionsByName = new Map<string, Collection>()
  /** Names of this device's device-local collections (storage meta `local-collections`). */
  private readonly localNames = new Set<string>()
  /** Tables adopted as collections (storage meta `adopted-tables`). */
  private adoptedTables: Record<string, { table: string, provider?: string }> = {}
  private readonly adopting = new Map<string, Promise<unknown>>()
  private readonly tableUnwatchers: Array<() => void> = []
  /** Routes chosen per collection on this device (storage meta `collection-routes`). */
  private chosenRoutes: Record<string, string> = {}
  private replicator: Replicator | undefined
  private readonly ydocs: YDocs
  /** The search indexer (embeddings and full text). */
  readonly indexer: Indexer
  /** ANN (HNSW) indexes of large collections. */
  readonly ann: AnnIndexes
  /**
   * Search across the user's online devices: `node.swarm.search({ collection, text, k, timeout })`
   * -> `{ hits: [{ id, score, device, doc }], devices: [{ device, status, ms, count }] }`.
   */
  readonly swarm: SwarmSearch
  /** Folder indexing into device-local collections: `node.files.index(path)`, `node.files.watch(path)`. */
  readonly files: FileIndexer
  /** Inviting new devices (`invite()`); a new device joins with {@link PeakNode.join}. */
  readonly pairing: Pairing
  /** The swarm's devices: list and revoke. */
  readonly devices: Devices
  /** The user's profile and preferences, replicated and encrypted. */
  readonly profile: Profile
  private memoryApi: Memory | undefined
  private placementApi: Placement | undefined
  private memoryOptions: MemoryOptions | undefined
  private placementOptions: PeakNodeOptions['placement']
  private readonly live: LiveQueries
  /** Acknowledgements of this device's writes by the others. */
  readonly confirmations: Confirmations

  private constructor (
    readonly log: Log,
    readonly storage: StorageProvider,
    private keystore: KeystoreData,
    private readonly lock: DirLock,
    paths: DataDirPaths,
    recoveryPhrase: string | undefined,
    confirmations: number,
    embedder: PeakNodeOptions['embedder'],
    backgroundIndexing: boolean,
    ann: { minChunks?: number | undefined, minRecall?: number | undefined }
  ) {
    super()
    this.ann = new AnnIndexes(storage, join(paths.dir, 'ann'), ann.minChunks, ann.minRecall)
    this.indexer = new Indexer(storage, async () => {
      if (embedder === undefined) return new UseLiteEmbedder()
      return typeof embedder === 'function' ? await embedder() : embedder
    }, changes => this.ann.apply(changes))
    this.indexer.on('progress', p => this.emit('index:progress', p))
    if (backgroundIndexing) {
      log.on('change', () => this.indexer.kick())
      this.indexer.startBackground()
    }
    this.paths = paths
    this.recoveryPhrase = recoveryPhrase
    this.confirmations = new Confirmations(confirmations)
    this.ydocs = new YDocs(log, storage)
    this.live = new LiveQueries(log, storage)
    this.pairing = new Pairing({ log, keystore, deviceName: keystore.certificate.name, multiaddrs: () => this.replicator?.network?.multiaddrs() ?? [] })
    this.devices = new Devices({
      log,
      keystore,
      online: () => new Set(this.peers().filter(p => p.verified).map(p => p.device)),
      lastSeen: () => this.replicator?.lastSeen() ?? new Map(),
      hangUp: async device => { await this.replicator?.network?.hangUp(device) }
    })
    this.profile = new Profile(new Collection('_profile' as CollectionName, this.collectionContext()))
    this.swarm = new SwarmSearch({
      deviceId: this.deviceId,
      deviceName: this.deviceName,
      swarmId: this.swarmId,
      collection: name => name === CONTEXT_COLLECTION ? this.memoryCollection(name) : this.collection(name),
      embedder: async () => await this.indexer.embedder(),
      network: () => this.network
    })
    // a folder index goes to a device-local collection; a new one embeds each file's folder
    // (relative to the indexed one), name and text: absolute paths are mostly noise to a model
    this.files = new FileIndexer(name => this.localNames.has(name) ? this.collection(name) : this.collection(name, { replicate: false, embed: ['dir', 'name', 'text'] }))
    log.on('change', ev => this.emit('change', ev))
    log.on('revoked', ev => {
      const mine = ev.device === this.deviceId ? this.revocation() : undefined
      if (mine !== undefined) this.emit('revoked', mine)
      this.emit('devices')
    })
    // certificates arrive as log entries: a new member shows as a longer member list
    let members = log.membership.devices().length
    log.on('entries', () => {
      const n = log.membership.devices().length
      if (n === members) return
      members = n
      this.emit('devices')
    })
  }

  /** This device's revocation, if it knows of one. */
  private revocation (): NodeStatus['revoked'] {
    const rev = this.log.revocation
    return rev === undefined ? undefined : { at: new Date(rev.issued).toISOString(), by: rev.issuer, after: rev.after }
  }

  /** Opens the node of a data dir, creating the identity on first open. */
  static async open (options: PeakNodeOptions): Promise<PeakNode> {
    const paths = dataDirPaths(options.dir)
    if (options.create === false && !existsSync(paths.keystore) && !hasData(paths.database)) {
      throw new NotInitializedError(`no PeakDB identity in ${paths.dir}; run \`peakdb init\` first`)
    }
    ensureDataDir(paths.dir)
    const lock = await acquireLock(paths, options.lock)
    let storage: StorageProvider | undefined
    let created: { phrase: string | undefined, recoveryPublicKey: Uint8Array } | undefined
    try {
      const { binding, record } = resolveStorage(paths, options.storage)
      let keystore: KeystoreData
      let recoverySealingSecret: Uint8Array | undefined
      const keystoreExisted = existsSync(paths.keystore)
      if (keystoreExisted) {
        keystore = readKeystore(paths.keystore, options.passphrase !== undefined ? { passphrase: options.passphrase } : {})
        if (options.recoveryPhrase !== undefined) {
          // the phrase unlocks the recovery key for this session: every epoch opens with it
          const root = deriveUserRoot(parseRecoveryPhrase(options.recoveryPhrase))
          if (root.swarmId !== keystore.swarmId) throw new DataDirError(`the recovery phrase belongs to swarm ${root.swarmId}, but ${paths.dir} is a device of swarm ${keystore.swarmId}`)
          recoverySealingSecret = root.recoverySecretKey
          root.rootSecretKey.fill(0)
        }
      } else {
        if (hasData(paths.database)) {
          throw new DataDirError(`${paths.keystore} is missing but ${paths.database} holds data; refusing to create a new identity over it (restore the keystore, or move the database away)`)
        }
        if (!record && binding.kind !== 'sqlite') {
          throw new DataDirError(`${paths.keystore} is missing but ${paths.storage} binds this dir to a database that may hold data; refusing to create a new identity over it (restore the keystore, or move ${paths.storage} away)`)
        }
        if (options.create === false) throw new NotInitializedError(`no PeakDB identity in ${paths.dir}; run \`peakdb init\` first`)
        const phrase = options.recoveryPhrase !== undefined ? parseRecoveryPhrase(options.recoveryPhrase) : generateRecoveryPhrase()
        const root = deriveUserRoot(phrase)
        const deviceSecretKey = generateSecretKey()
        const device = deviceIdFromPublicKey(publicKeyOf(deviceSecretKey))
        const certificate = issueCertificate({ swarm: root.swarmId, device, name: options.deviceName ?? hostname() }, createSigner(root.rootSecretKey), true)
        keystore = {
          swarmId: root.swarmId,
          rootPublicKey: root.rootPublicKey,
          recoveryPublicKey: root.recoveryPublicKey,
          deviceSecretKey,
          // a device created from the phrase keeps the root key: it can certify new devices
          rootSecretKey: root.rootSecretKey,
          certificate,
          chain: [],
          createdAt: new Date().toISOString(),
          origin: options.recoveryPhrase !== undefined ? 'recover' : 'init'
        }
        writeKeystore(paths.keystore, keystore, options.passphrase !== undefined ? { passphrase: options.passphrase } : {})
        if (options.recoveryPhrase !== undefined) recoverySealingSecret = root.recoverySecretKey
        else root.recoverySecretKey.fill(0)
        created = { phrase: options.recoveryPhrase === undefined ? phrase : undefined, recoveryPublicKey: root.recoveryPublicKey }
      }
      storage = await openStorage(binding, paths, options.durability)
      if (record) recordStorage(paths, binding)
      if (keystoreExisted && !joinOpens.has(options) && await storage.getMeta('device') === undefined) {
        // the keystore knows this device, but its database is new: the history it wrote is
        // gone, and writing again under the same DeviceId would fork its chain for good
        const previous = keystore.certificate.device
        keystore = successorKeystore(keystore, 'database-lost')
        writeKeystore(paths.keystore, keystore, options.passphrase !== undefined && keystoreIsProtected(paths.keystore) ? { passphrase: options.passphrase } : {})
        logger.warn('the database of this device was lost: it continues under a new DeviceId and resyncs from the others', { previous, device: keystore.certificate.device })
      }
      await bindStorage(storage, keystore, paths)
      const router = await openRouter(storage, options, paths)
      if (router !== undefined) storage = router
      const deviceId = keystore.certificate.device
      const log = await Log.open(storage, {
        swarmId: keystore.swarmId,
        rootPublicKey: keystore.rootPublicKey,
        deviceId,
        signer: createSigner(keystore.deviceSecretKey),
        sealingSecret: sealingSecretKeyOf(keystore.deviceSecretKey),
        ...(recoverySealingSecret !== undefined ? { recoverySealingSecret } : {})
      })
      // first open (or a device continuing under a new key): record this device's certificate
      // with the chain that proves it, and a first data-key epoch of its own, in the log. A
      // paired device gets both from its inviter instead.
      if (log.heads().length === 0 && (keystore.origin !== 'join' || keystore.retired !== undefined)) {
        const epoch = createEpoch({ swarm: keystore.swarmId, gen: 1, devices: [deviceId], recoveryPublicKey: created?.recoveryPublicKey ?? keystore.recoveryPublicKey })
        const certs = [...keystore.chain].reverse().concat(keystore.certificate).map(cert => ({ t: 'cert' as const, cert }))
        await log.appendControl([...certs, epochOp(epoch.record)])
      }
      if (router !== undefined) await reconcileRoutes(router, log)
      const node = new PeakNode(log, storage, keystore, lock, paths, created?.phrase, options.confirmations ?? 1, options.embedder, options.backgroundIndexing ?? true, { minChunks: options.annMinChunks, minRecall: options.annMinRecall })
      for (const name of JSON.parse(await storage.getMeta(LOCAL_COLLECTIONS_META) ?? '[]') as string[]) node.localNames.add(name)
      node.memoryOptions = options.memory
      node.placementOptions = options.placement
      node.chosenRoutes = JSON.parse(await storage.getMeta(CHOSEN_ROUTES_META) ?? '{}') as Record<string, string>
      node.adoptedTables = JSON.parse(await storage.getMeta(ADOPTED_META) ?? '{}') as Record<string, { table: string, provider?: string }>
      for (const [name, a] of Object.entries(node.adoptedTables)) {
        try {
          await node.attachTable(name, a.table, a.provider)
        } catch (err) {
          logger.warn('an adopted table cannot be served now', { collection: name, table: a.table, error: (err as Error).message })
        }
      }
      if (options.network !== undefined) {
        try {
          await node.startNetwork(options.network)
        } catch (err) {
          await node.close()
          throw err
        }
      }
      return node
    } catch (err) {
      await storage?.close()
      // an identity created by an open that failed was never shown: leave nothing of it, so
      // that the next open creates one and shows its recovery phrase
      if (created !== undefined) removeDataFiles(paths)
      lock.release()
      throw err
    }
  }

  /** This device's id (its libp2p PeerId). */
  get deviceId (): DeviceId { return this.keystore.certificate.device }

  /** Where this node's log and documents live (no secrets in `location`). */
  get storageInfo (): { kind: string, location: string } { return { kind: this.storage.kind, location: this.storage.location } }
  /** The user's swarm id. */
  get swarmId (): SwarmId { return this.keystore.swarmId }
  /** This device's name in the swarm. */
  get deviceName (): string { return this.keystore.certificate.name }
  /** The data dir. */
  get dir (): string { return this.paths.dir }
  /** True after close(). */
  get isClosed (): boolean { return this.closed }

  /** Throws {@link NodeClosedError} after close(). */
  checkOpen (): void {
    if (this.closed) throw new NodeClosedError('the node is closed')
  }

  /**
   * A collection by name: a letter, then up to 63 letters, digits, `_`, `-` or `.`.
   * Throws {@link InvalidCollectionNameError}.
   */
  collection (name: string, options?: CollectionOptions): Collection {
    this.checkOpen()
    if (!isCollectionName(name) || name.startsWith('_')) {
      throw InvalidCollectionNameError.of(name)
    }
    const known = this.localNames.has(name)
    if (options?.replicate === true && known) throw new InvalidOptionError(`collection ${name} is device-local on this device: it cannot be replicated`)
    if (options?.adopt !== undefined) {
      const adopted = this.adoptedTables[name]
      if (adopted === undefined || adopted.table !== options.adopt) {
        const adopting = this.adopt(name, options.adopt, options.provider !== undefined ? { provider: options.provider } : {})
        this.adopting.set(name, adopting)
        adopting.catch(() => {})
        const c = new Collection(name as CollectionName, this.collectionContext(), {}, true, adopting.then(() => {}))
        this.collectionsByName.set(name, c)
        return c
      }
    } else if (options?.provider !== undefined) {
      this.routeNew(name, options.provider, known || options.replicate === false)
    }
    let c = this.collectionsByName.get(name)
    if (c === undefined || (options !== undefined && options.adopt === undefined)) {
      c = new Collection(name as CollectionName, this.collectionContext(), options, known || options?.replicate === false)
      this.collectionsByName.set(name, c)
    }
    return c
  }

  /**
   * Memory for agents: short-term context and long-term knowledge, recall, history and
   * consolidation (see {@link Memory}). Its collections are made on first use.
   */
  get memory (): Memory {
    this.checkOpen()
    this.memoryApi ??= new Memory({
      knowledge: this.memoryCollection('_memory'),
      context: this.memoryCollection(CONTEXT_COLLECTION),
      history: this.memoryCollection('_memory_history'),
      deviceId: this.deviceId,
      embedder: async () => await this.indexer.embedder(),
      swarmSearch: async q => await this.swarm.search(q)
    }, this.memoryOptions)
    return this.memoryApi
  }

  /**
   * Placement across the user's devices: each collection's policy (`replicas`, `pin`), each
   * device's metrics, and the plan every device computes from them (see {@link Placement}).
   */
  get placement (): Placement {
    this.checkOpen()
    this.placementApi ??= new Placement({
      deviceId: this.deviceId,
      dataDir: this.dir,
      policies: new Collection('_placement' as CollectionName, this.collectionContext(), { embed: false }),
      metrics: new Collection(DEVICE_METRICS as CollectionName, this.collectionContext(), { embed: false }),
      members: () => this.log.membership.devices().filter(d => d.revocation === undefined).map(d => ({ device: d.device, name: d.name })),
      replicated: async () => (await this.collectionInfos()).filter(c => c.local !== true).map(c => c.name),
      collection: name => this.collection(name),
      isLocal: name => this.localNames.has(name),
      ...(this.placementOptions?.budgetBytes !== undefined ? { budgetBytes: this.placementOptions.budgetBytes } : {}),
      ...(this.placementOptions?.now !== undefined ? { now: this.placementOptions.now } : {}),
      readMetrics: async device => {
        const stored = await this.storage.getDocument(DEVICE_METRICS, device)
        if (stored?.body == null) return null
        const state = docStateFromRow({ body: stored.body, meta: JSON.parse(stored.meta) as DocRow['meta'] })
        return { doc: stored.body, byItself: Object.values(state.f).every(field => field.s.endsWith(device)) }
      }
    })
    return this.placementApi
  }

  /** The system collections of memory: knowledge and its history replicated, context device-local. */
  private memoryCollection (name: '_memory' | '_memory_history' | typeof CONTEXT_COLLECTION): Collection {
    let c = this.collectionsByName.get(name)
    if (c === undefined) {
      const options: CollectionOptions = name === '_memory_history'
        ? { embed: false, indexes: ['memory'] }
        : { embed: ['content'], indexes: ['hash'], ...(name === CONTEXT_COLLECTION ? { replicate: false } : {}) }
      c = new Collection(name as CollectionName, this.collectionContext(), options, name === CONTEXT_COLLECTION)
      this.collectionsByName.set(name, c)
    }
    return c
  }

  /** Routes a collection that holds nothing yet to a provider (see CollectionOptions.provider). */
  private routeNew (name: string, provider: string, local: boolean): void {
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    if (router === undefined) {
      if (provider === PRIMARY) return
      throw new InvalidOptionError(`collection ${name}: no provider named ${JSON.stringify(provider)} (no providers are configured; see "providers" in config.json)`)
    }
    const key = local ? LOCAL_PREFIX + name : name
    const current = router.providerOf(key)
    if (current === provider) return
    if (router.holds(key)) throw new InvalidOptionError(`collection ${name} lives in provider ${current}: move it with \`peakdb collection ${name} --provider ${provider}\` (node.moveCollection)`)
    try {
      router.setRoute(name, provider)
    } catch (err) {
      throw new InvalidOptionError(`collection ${name}: ${(err as Error).message}`, { cause: err })
    }
    if (router.providerOf(key) !== provider) throw new InvalidOptionError(`collection ${name} is replicated, and provider ${provider} keeps device-local collections only`)
    this.chosenRoutes[name] = provider
    void this.storage.setMeta(CHOSEN_ROUTES_META, JSON.stringify(this.chosenRoutes)).catch(err => logger.warn('could not record a collection route', { collection: name, error: (err as Error).message }))
  }

  /**
   * Adopts an existing PostgreSQL table (`schema.table`; default schema public) as a collection:
   * its primary key is `_id`, its columns the fields, and values are checked against the column
   * types ({@link ColumnTypeError} names the column and the type). `get`, `find`, `count`, `put`,
   * `patch`, `delete` and `watch` work on it; `watch` also sees changes any other client makes
   * (another process, psql). The table is in the primary storage when the node runs on
   * PostgreSQL, or in the named postgres `provider`. Adopted tables are the database's own data:
   * never written to the signed log, never replicated. The node remembers the adoption.
   */
  async adopt (name: string, table: string, options: { provider?: string } = {}): Promise<Collection> {
    this.checkOpen()
    if (!isCollectionName(name) || name.startsWith('_')) throw InvalidCollectionNameError.of(name)
    const key = LOCAL_PREFIX + name
    const known = this.adoptedTables[name]
    if (known !== undefined) {
      if (known.table !== table || (known.provider ?? PRIMARY) !== (options.provider ?? PRIMARY)) throw new InvalidOptionError(`collection ${name} already adopts table ${known.table}${known.provider !== undefined ? ` of provider ${known.provider}` : ''}`)
      await this.adopting.get(name)
      return this.collection(name)
    }
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    if (router !== undefined && (this.localNames.has(name) || router.holds(name) || router.holds(key))) throw new InvalidOptionError(`collection ${name} already holds documents here: adopt the table under another name`)
    await this.attachTable(name, table, options.provider)
    this.adoptedTables[name] = { table, ...(options.provider !== undefined ? { provider: options.provider } : {}) }
    this.localNames.add(name)
    // a collection object made before the adoption names the replicated key: make it anew
    this.collectionsByName.delete(name)
    await this.storage.setMeta(LOCAL_COLLECTIONS_META, JSON.stringify([...this.localNames].sort()))
    await this.storage.setMeta(ADOPTED_META, JSON.stringify(this.adoptedTables))
    return this.collection(name)
  }

  /** Serves collection `name` from an adopted table and relays its outside changes to watchers. */
  private async attachTable (name: string, table: string, provider: string | undefined): Promise<void> {
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    const store = provider === undefined || provider === PRIMARY ? router?.primary : router?.providers.get(provider)
    const adopt = (store as { adopt?: PostgresAdopt } | undefined)?.adopt
    if (router === undefined || store === undefined || adopt === undefined) {
      throw new InvalidOptionError(provider !== undefined && provider !== PRIMARY && router?.providers.has(provider) !== true
        ? `no provider named ${JSON.stringify(provider)} (see "providers" in config.json)`
        : `adopting a table needs PostgreSQL: ${provider !== undefined && provider !== PRIMARY ? `provider ${provider} is ${store?.kind ?? 'unknown'}` : 'run the node on PostgreSQL (peakdb init --storage postgres://...) or name a postgres provider (--provider)'}`)
    }
    const key = LOCAL_PREFIX + name
    const { store: tableStore, unwatch } = await adopt.call(store, key, table, ids => {
      if (!this.closed) this.log.announceLocal(ids.map(id => ({ collection: key, id, before: null, after: null })))
    })
    router.adopt(key, `${provider ?? PRIMARY}:${tableStore.schema}.${tableStore.table}`, tableStore)
    this.tableUnwatchers.push(unwatch)
  }

  /**
   * Moves a replicated collection to another provider: re-materialises it there from the log
   * (`onProgress` gets entries read and entries in the log), switches its route, and removes it
   * from the old provider once done. Throws {@link InvalidOptionError} for an unknown provider.
   */
  async moveCollection (name: string, provider: string, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<void> {
    this.checkOpen()
    if (!isCollectionName(name) || name.startsWith('_')) throw InvalidCollectionNameError.of(name)
    if (this.localNames.has(name)) throw new InvalidOptionError(`collection ${name} is device-local: it has no log to rebuild it from in another provider`)
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    if (router === undefined) {
      if (provider === PRIMARY) return
      throw new InvalidOptionError(`no provider named ${JSON.stringify(provider)} (no providers are configured; see "providers" in config.json)`)
    }
    try {
      await router.move(name, provider, this.log.entryOpener(), options.onProgress)
    } catch (err) {
      if ((err as Error).name === 'ProviderCapabilityError') throw new InvalidOptionError((err as Error).message, { cause: err })
      throw err
    }
    this.chosenRoutes[name] = provider
    await this.storage.setMeta(CHOSEN_ROUTES_META, JSON.stringify(this.chosenRoutes))
    this.ann.forget(name)
  }

  /**
   * Sets a device-local collection's time to live and byte budget (least recently used
   * documents go first). Only a file provider keeps them: route the collection to one (config
   * `routes`, or `collection(name, { replicate: false, provider })`). Returns how many documents
   * the new policy removed at once.
   */
  async setCollectionPolicy (name: string, policy: { ttlMs?: number | null, maxBytes?: number | null }): Promise<{ removed: number }> {
    this.checkOpen()
    const store = this.policyStore(name)
    const removed = await store.setCollectionPolicy(LOCAL_PREFIX + name, policy)
    if (removed.length > 0) this.log.announceLocal(removed)
    return { removed: removed.length }
  }

  /** A device-local collection's policy in force, or undefined when its provider keeps none. */
  async collectionPolicy (name: string): Promise<{ ttlMs: number | null, maxBytes: number | null } | undefined> {
    this.checkOpen()
    if (!this.localNames.has(name)) return undefined
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    const store = router?.providers.get(router.providerOf(LOCAL_PREFIX + name)) as Partial<PolicyStore> | undefined
    if (store?.collectionPolicy === undefined) return undefined
    const p = await store.collectionPolicy(LOCAL_PREFIX + name)
    return { ttlMs: p.ttlMs ?? null, maxBytes: p.maxBytes ?? null }
  }

  private policyStore (name: string): PolicyStore {
    if (!this.localNames.has(name)) throw new InvalidOptionError(`collection ${name} is not device-local on this device: a time to live and a size budget apply to device-local collections only`)
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    const provider = router?.providerOf(LOCAL_PREFIX + name) ?? PRIMARY
    const store = router?.providers.get(provider) as Partial<PolicyStore> | undefined
    if (store?.setCollectionPolicy === undefined) throw new InvalidOptionError(`collection ${name} lives in provider ${provider}, which keeps no time to live or size budget: route it to a file provider (config "providers": { "scratch": { "kind": "file" } }, "routes": { "${name}": "scratch" })`)
    return store as PolicyStore
  }

  /** The node's storage providers: the primary and every named one, with their health. */
  async providers (): Promise<ProviderInfo[]> {
    this.checkOpen()
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    const stores: Array<[string, RoutedStore]> = [[PRIMARY, router?.primary ?? this.storage], ...(router?.providers ?? [])]
    const routes = router?.routes() ?? {}
    const out: ProviderInfo[] = []
    for (const [name, store] of stores) {
      const started = performance.now()
      let error: string | undefined
      try {
        await store.count(`${LOCAL_PREFIX}health`, undefined)
      } catch (err) {
        error = (err as Error).message
      }
      const rttMs = Math.round((performance.now() - started) * 1000) / 1000
      const pool = typeof (store as { health?: unknown }).health === 'function' ? (store as unknown as { health: () => { size: number, idle: number, waiting: number, max: number } }).health() : undefined
      out.push({
        name,
        kind: store.kind,
        location: store.location,
        healthy: error === undefined,
        rttMs,
        ...(error !== undefined ? { error } : {}),
        ...(pool !== undefined ? { pool: { size: pool.size, inUse: pool.size - pool.idle, idle: pool.idle, waiting: pool.waiting, max: pool.max } } : {}),
        routes: Object.entries(routes).filter(([, p]) => p === name).map(([r]) => r)
      })
    }
    return out
  }

  /**
   * Describes the tables and views of a provider's database (the primary by default), those
   * PeakDB did not create included and PeakDB's own marked. Throws {@link InvalidOptionError}
   * for an unknown provider, or one that cannot describe itself (the file provider).
   *
   * @example
   * ```ts
   * const { tables } = await node.describeSchema({ provider: 'warehouse', schema: 'public' })
   * ```
   */
  async describeSchema (options: DescribeSchemaOptions & { readonly provider?: string } = {}): Promise<SchemaDescription> {
    this.checkOpen()
    const { provider = PRIMARY, ...rest } = options
    const router = this.storage instanceof DataRouter ? this.storage : undefined
    const store = provider === PRIMARY ? router?.primary ?? this.storage : router?.providers.get(provider)
    if (store === undefined) throw new InvalidOptionError(`"provider" expected ${[PRIMARY, ...(router?.providers.keys() ?? [])].map(n => JSON.stringify(n)).join(' or ')}, got ${JSON.stringify(provider)}`)
    if (!canDescribeSchema(store)) throw new InvalidOptionError(`provider ${provider} (${store.kind}) cannot describe its schema: only SQLite and PostgreSQL providers can`)
    return await store.describeSchema(rest)
  }

  /**
   * Joins the swarm: starts the libp2p host, connects to bootstrap and known devices, and keeps
   * the log replicated until `stopNetwork()` or `close()`.
   */
  async startNetwork (options: ReplicationOptions = {}): Promise<void> {
    this.checkOpen()
    if (this.replicator !== undefined) return
    // libp2p is loaded only by nodes that go on the network (it costs ~0.35 s and ~45 MB)
    const { Replicator } = await import('./replicator.js')
    const r = new Replicator(this.log, this.storage, {
      certificate: this.keystore.certificate,
      chain: this.keystore.chain,
      rootPublicKey: this.keystore.rootPublicKey,
      recoveryPublicKey: this.keystore.recoveryPublicKey,
      deviceSecretKey: this.keystore.deviceSecretKey
    }, options, this.paths.peers, this.confirmations, this.pairing, this.swarm.handler())
    r.on('sync:progress', ev => this.emit('sync:progress', ev))
    r.on('peer:verified', ev => this.emit('peer:connect', ev))
    r.on('peer:disconnected', ev => this.emit('peer:disconnect', ev))
    try {
      await r.start()
    } catch (err) {
      await r.stop()
      throw err
    }
    this.replicator = r
  }

  /** Leaves the swarm (the node stays open locally). */
  async stopNetwork (): Promise<void> {
    const r = this.replicator
    this.replicator = undefined
    await r?.stop()
  }

  /** The network side, while the node is on the network. */
  get network (): SwarmTransport | undefined {
    return this.replicator?.network
  }

  /** Connected peers (empty when not on the network). */
  peers (): ReturnType<Replicator['peers']> {
    return this.replicator?.peers() ?? []
  }

  /**
   * Pulls from every connected member now and waits for the pulls to finish. Throws
   * {@link NotOnNetworkError} when the node is not on the network.
   */
  async syncNow (): Promise<Array<{ device: string, ok: boolean, error?: string }>> {
    this.checkOpen()
    const t = this.replicator?.network
    if (t === undefined) throw new NotOnNetworkError('the node is not on the network (start it with `network` options or startNetwork())')
    return await t.syncNow()
  }

  /** Connects to a device by multiaddr (with /p2p/<id>) and waits until it proved membership. */
  async connect (addr: string, options: { signal?: AbortSignal } = {}): Promise<{ device: string, name: string }> {
    this.checkOpen()
    const t = this.replicator?.network
    if (t === undefined) throw new NotOnNetworkError('the node is not on the network (start it with `network` options or startNetwork())')
    const before = this.log.revocation
    if (before !== undefined) throw new DeviceRevokedError(before)
    try {
      return await t.dial(addr, options)
    } catch (err) {
      // the peer may have refused this device with its revocation just now
      const rev = this.log.revocation
      throw rev !== undefined ? new DeviceRevokedError(rev, { cause: err }) : err
    }
  }

  /** Devices this node has seen, with their last known addresses. */
  knownDevices (): ReturnType<Replicator['peerBookEntries']> {
    return this.replicator?.peerBookEntries() ?? []
  }

  /**
   * A live Yjs document. Local edits are recorded in the log (one entry per burst of edits) and
   * replicate like any other write; edits from other devices are applied to it as they arrive.
   *
   * @example
   * ```ts
   * const doc = await node.ydoc('meeting-notes')
   * doc.getText('body').insert(0, 'Agenda: ')
   * ```
   */
  async ydoc (id: string): Promise<Y.Doc> {
    this.checkOpen()
    return await this.ydocs.open(id)
  }

  private collectionContext (): CollectionContext {
    return {
      log: this.log,
      storage: this.storage,
      checkOpen: () => this.checkOpen(),
      track: seq => this.confirmations.track(seq),
      live: this.live,
      indexer: this.indexer,
      ann: this.ann,
      rememberLocal: async name => {
        if (this.localNames.has(name)) return
        if (await this.storage.count(name, undefined) > 0) throw new InvalidOptionError(`collection ${name} holds replicated documents: a device-local collection needs another name`)
        this.localNames.add(name)
        await this.storage.setMeta(LOCAL_COLLECTIONS_META, JSON.stringify([...this.localNames].sort()))
      }
    }
  }

  /**
   * Protects the keystore with a passphrase, changes it, or (with undefined) removes it. The
   * keystore is rewritten atomically.
   */
  async setPassphrase (passphrase: string | undefined): Promise<void> {
    this.checkOpen()
    if (passphrase !== undefined && passphrase.length < 8) throw new InvalidOptionError('"passphrase" expected at least 8 characters')
    writeKeystore(this.paths.keystore, this.keystore, passphrase !== undefined ? { passphrase } : {})
  }

  /** True when the keystore holds the user root key (this device can certify devices as root). */
  get holdsRootKey (): boolean {
    return this.keystore.rootSecretKey !== undefined
  }

  /**
   * Joins a swarm with an invite code: a fresh data dir becomes a new device of the inviter's
   * swarm. The new device dials the inviter, proves it knows the invite's secret (which never
   * crosses the wire), receives its certificate and the data keys, stores its keystore, and
   * starts syncing. The data dir is checked before the inviter is contacted
   * ({@link DataDirError}, {@link DataDirLockedError}, {@link InvalidOptionError}), and the
   * inviter records the new device only once its keystore is stored: a join that fails leaves
   * no device behind on either side, and the invite can be used again.
   *
   * @example
   * ```ts
   * const node = await PeakNode.join({ dir: './desktop', code: 'peak1…', network: { listen: ['/ip4/127.0.0.1/tcp/0'] } })
   * ```
   */
  static async join (options: JoinOptions): Promise<PeakNode> {
    const invite = parseInviteCode(options.code)
    const paths = dataDirPaths(options.dir)
    // everything local is checked before the inviter certifies anything
    const target = prepareJoinDir(paths, { passphrase: options.passphrase })
    const device = newDevice(options.deviceName)
    let welcome: Welcome
    try {
      const { createHost, PeerGate, requestPairing } = await import('../transport/index.js')
      // nobody is ever verified on this short-lived host: it asks for pairing and gossips with no one
      const host = await createHost({ deviceSecretKey: device.secretKey, swarmId: 'pairing', gate: new PeerGate(() => false), options: { listen: ['/ip4/127.0.0.1/tcp/0'], dht: false } })
      try {
        const session = await requestPairing(host, invite, normaliseDeviceName(device.name))
        try {
          const keystore = keystoreFromWelcome(device.secretKey, session.welcome)
          try {
            writeKeystore(paths.keystore, keystore, options.passphrase !== undefined ? { passphrase: options.passphrase } : {})
          } catch (err) {
            throw new DataDirError(`cannot write ${paths.keystore}: ${(err as Error).message}`, { cause: err })
          }
        } catch (err) {
          // the inviter records nothing and keeps the invite for another try
          session.abort(err as Error)
          throw err
        }
        // the inviter records this device only now, so a failure above leaves no member behind
        await session.confirm()
        welcome = session.welcome
      } finally {
        await host.stop()
      }
    } catch (err) {
      target.undo()
      throw err
    }
    const network = options.network ?? {}
    const openOptions: PeakNodeOptions = {
      ...options,
      create: false,
      network: { ...network, bootstrap: [...(network.bootstrap ?? []), ...welcome.addrs] }
    }
    joinOpens.add(openOptions)
    const node = await PeakNode.open(openOptions)
    try {
      await node.log.deliverKeys(welcome.keys)
      // come back with the data: the first pull brings the epoch records and the log
      for (const addr of welcome.addrs) {
        try {
          await node.connect(addr)
          break
        } catch { /* try the next address */ }
      }
      await node.syncNow()
    } catch (err) {
      await node.close()
      throw err
    }
    return node
  }

  /** Every collection with documents or indexes, with counts. */
  async collections (): Promise<CollectionInfo[]> {
    this.checkOpen()
    return await this.collectionInfos()
  }

  /** Collections as users name them (device-local ones marked); PeakDB's own (`_profile`, `_memory`, …) are not listed. */
  private async collectionInfos (): Promise<CollectionInfo[]> {
    return (await this.storage.collections()).map(c => c.name.startsWith(LOCAL_PREFIX) ? { ...c, name: c.name.slice(LOCAL_PREFIX.length), local: true } : c)
      .filter(c => !c.name.startsWith('_'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  /** A snapshot of this node's identity, log and collections. */
  async status (): Promise<NodeStatus> {
    this.checkOpen()
    const revoked = this.revocation()
    return {
      deviceId: this.deviceId,
      swarmId: this.swarmId,
      deviceName: this.deviceName,
      dir: this.dir,
      storage: { kind: this.storage.kind, location: this.storage.location },
      entries: await this.storage.entryCount(),
      versionVector: vectorToJson(this.log.versionVector()),
      collections: await this.collectionInfos(),
      pendingEntries: await this.log.pendingCount(),
      confirmedSeq: this.confirmations.confirmedSeq(),
      ...(this.keystore.retired !== undefined ? { retiredDevices: this.keystore.retired } : {}),
      ...(revoked !== undefined ? { revoked } : {}),
      ...(this.replicator?.network !== undefined ? { network: { multiaddrs: this.replicator.network.multiaddrs(), reachability: this.replicator.network.reachability(), peers: this.replicator.peers(), syncing: this.replicator.syncState() } } : {})
    }
  }

  /**
   * Re-verifies the whole log (hashes, signatures, chains, membership, decryption) and the
   * database's integrity; with `rebuild`, also compares the documents with a replay of the log.
   */
  async verify (options: { rebuild?: boolean, onProgress?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
    this.checkOpen()
    return await this.log.verify(options)
  }

  /** Closes storage and releases the data dir. Idempotent. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.files.close()
    for (const unwatch of this.tableUnwatchers.splice(0)) unwatch()
    this.live.close()
    await this.indexer.close().catch(() => {})
    await this.ann.close().catch(() => {})
    await this.ydocs.close().catch(() => {})
    // the last writes are signed (and announced while the network is up)
    await this.log.flush().catch(err => logger.warn('could not sign the last local entries', { error: (err as Error).message }))
    await this.stopNetwork().catch(() => {})
    this.log.removeAllListeners()
    this.removeAllListeners()
    try {
      await this.storage.close()
    } finally {
      this.lock.release()
    }
  }
}

/** Binds a database to one swarm and device, and refuses a database bound to another. */
async function bindStorage (storage: StorageProvider, keystore: KeystoreData, paths: DataDirPaths): Promise<void> {
  const swarm = await storage.getMeta('swarm')
  const device = await storage.getMeta('device')
  if (swarm === undefined && device === undefined) {
    await storage.setMeta('swarm', keystore.swarmId)
    await storage.setMeta('device', keystore.certificate.device)
    return
  }
  if (swarm !== keystore.swarmId || device !== keystore.certificate.device) {
    throw new DataDirError(`${storage.location} belongs to device ${device ?? '?'} of swarm ${swarm ?? '?'}, but ${paths.keystore} is device ${keystore.certificate.device} of swarm ${keystore.swarmId}`)
  }
}

/**
 * Opens the named providers and the router over them, or undefined when nothing is routed now
 * or was before (a collection placed in a provider since removed from the config is rebuilt in
 * the primary from the log).
 */
async function openRouter (primary: StorageProvider, options: PeakNodeOptions, paths: DataDirPaths): Promise<DataRouter | undefined> {
  const chosen = JSON.parse(await primary.getMeta(CHOSEN_ROUTES_META) ?? '{}') as Record<string, string>
  const placed = JSON.parse(await primary.getMeta(PLACEMENT_META) ?? '{}') as Record<string, string>
  const specs = options.providers ?? {}
  const routedBefore = Object.values(placed).some(p => p !== PRIMARY && !p.includes(':'))
  // a node on PostgreSQL may adopt tables: it always has a router
  if (primary.kind !== 'postgres' && Object.keys(specs).length === 0 && Object.keys(chosen).length === 0 && Object.keys(options.routes ?? {}).length === 0 && !routedBefore) return undefined
  const opened = new Map<string, RoutedStore>()
  try {
    for (const [name, spec] of Object.entries(specs)) {
      try {
        opened.set(name, await openProvider(name, spec, primary, paths))
      } catch (err) {
        if (err instanceof Error && err.name === 'StorageUnavailableError') err.message = `provider ${name}: ${err.message}`
        throw err
      }
    }
    const router = new DataRouter(primary, opened)
    for (const [pattern, provider] of Object.entries({ ...options.routes, ...chosen })) {
      // a chosen route to a provider no longer configured: its collections come back to the primary
      if (provider !== PRIMARY && !opened.has(provider) && chosen[pattern] === provider) {
        logger.warn('a collection was moved to a provider that is no longer configured; it is rebuilt in the primary', { collection: pattern, provider })
        continue
      }
      try {
        router.setRoute(pattern, provider)
      } catch (err) {
        throw new InvalidOptionError(`route ${pattern} -> ${provider}: ${(err as Error).message}`, { cause: err })
      }
    }
    router.onBehind = (provider, err) => logger.warn('a storage provider fell behind the log; it catches up in the background', { provider, error: err.message })
    return router
  } catch (err) {
    for (const store of opened.values()) await store.close().catch(() => {})
    throw err
  }
}

/**
 * Brings routed providers up to the log (after a crash between a log commit and a routed write,
 * or a provider that was down), then moves every replicated collection whose route changed
 * since the last open to its new provider (re-materialised from the log).
 */
async function reconcileRoutes (router: DataRouter, log: Log): Promise<void> {
  const open = log.entryOpener()
  const replayed = await router.catchUp(open)
  if (replayed > 0) logger.info('routed providers caught up with the log', { ops: replayed })
  const previous = await router.loadPlacement()
  const names = new Set([...previous.keys(), ...await router.knownCollections()])
  for (const name of names) {
    const was = previous.get(name)
    const now = router.providerOf(name)
    if (was === undefined || was === now || name.startsWith(LOCAL_PREFIX)) continue
    logger.info('moving a collection to the provider its route now names', { collection: name, from: was, to: now })
    await router.move(name, now, open, undefined, was)
  }
  await router.settlePlacement()
}
