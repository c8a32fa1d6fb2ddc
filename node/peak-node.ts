/**
 * PeakNode: the composition root. It owns a data dir (lock, keystore, database), wires identity,
 * log and storage together, and hands out collections.
 */
import { EventEmitter } from 'node:events'
import { existsSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import {
  createEpoch, createSigner, deriveUserRoot, deviceIdFromPublicKey, generateRecoveryPhrase, generateSecretKey,
  issueCertificate, parseRecoveryPhrase, publicKeyOf, readKeystore, sealingSecretKeyOf, writeKeystore,
  type DeviceId, type KeystoreData, type SwarmId
} from '../identity/index.js'
import { isCollectionName, vectorToJson, type CollectionName } from '../crdt/index.js'
import { SqliteProvider, type CollectionInfo, type StorageProvider } from '../storage/index.js'
import { Collection, type CollectionOptions } from './collection.js'
import { acquireLock, dataDirPaths, ensureDataDir, type DataDirPaths, type DirLock } from './data-dir.js'
import { DataDirError, InvalidCollectionNameError, NodeClosedError, NotInitializedError, NotOnNetworkError } from './errors.js'
import { epochOp, Log, type ChangeEvent, type VerifyReport } from './log.js'
import { Confirmations } from './confirmations.js'
import { YDocs } from './ydocs.js'
import { LiveQueries } from './live-query.js'
import type * as Y from 'yjs'
import type { Replicator, ReplicationOptions } from './replicator.js'
import type { SwarmTransport, SyncProgress } from '../transport/index.js'

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
   * Join the swarm over libp2p (listen, bootstrap, mDNS, DHT). Without it the node is local only;
   * `startNetwork()` can start it later.
   */
  readonly network?: ReplicationOptions
  /** Other devices that must hold a write before it counts as confirmed (default 1). */
  readonly confirmations?: number
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
  /** Present while the node is on the network. */
  readonly network?: {
    readonly multiaddrs: string[]
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
  /** A device proved membership and is now a peer. */
  'peer:connect': [{ device: string, name: string }]
  /** A peer disconnected. */
  'peer:disconnect': [{ device: string }]
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
  private replicator: Replicator | undefined
  private readonly ydocs: YDocs
  private readonly live: LiveQueries
  /** Acknowledgements of this device's writes by the others. */
  readonly confirmations: Confirmations

  private constructor (
    readonly log: Log,
    readonly storage: StorageProvider,
    private readonly keystore: KeystoreData,
    private readonly lock: DirLock,
    paths: DataDirPaths,
    recoveryPhrase: string | undefined,
    confirmations: number
  ) {
    super()
    this.paths = paths
    this.recoveryPhrase = recoveryPhrase
    this.confirmations = new Confirmations(confirmations)
    this.ydocs = new YDocs(log, storage)
    this.live = new LiveQueries(log, storage)
    log.on('change', ev => this.emit('change', ev))
  }

  /** Opens the node of a data dir, creating the identity on first open. */
  static async open (options: PeakNodeOptions): Promise<PeakNode> {
    const paths = dataDirPaths(options.dir)
    if (options.create === false && !existsSync(paths.keystore) && !hasData(paths.database)) {
      throw new NotInitializedError(`no PeakDB identity in ${paths.dir}; run \`peakdb init\` first`)
    }
    ensureDataDir(paths.dir)
    const lock = acquireLock(paths)
    let storage: StorageProvider | undefined
    try {
      let keystore: KeystoreData
      let created: { phrase: string | undefined, recoveryPublicKey: Uint8Array } | undefined
      if (existsSync(paths.keystore)) {
        keystore = readKeystore(paths.keystore)
      } else {
        if (hasData(paths.database)) {
          throw new DataDirError(`${paths.keystore} is missing but ${paths.database} holds data; refusing to create a new identity over it (restore the keystore, or move the database away)`)
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
          certificate,
          chain: [],
          createdAt: new Date().toISOString()
        }
        writeKeystore(paths.keystore, keystore)
        root.rootSecretKey.fill(0)
        root.recoverySecretKey.fill(0)
        created = { phrase: options.recoveryPhrase === undefined ? phrase : undefined, recoveryPublicKey: root.recoveryPublicKey }
      }
      storage = SqliteProvider.open(options.durability === undefined ? { path: paths.database } : { path: paths.database, durability: options.durability })
      await bindStorage(storage, keystore, paths)
      const deviceId = keystore.certificate.device
      const log = await Log.open(storage, {
        swarmId: keystore.swarmId,
        rootPublicKey: keystore.rootPublicKey,
        deviceId,
        signer: createSigner(keystore.deviceSecretKey),
        sealingSecret: sealingSecretKeyOf(keystore.deviceSecretKey)
      })
      // first open (or a crash right after the keystore was written): record this device's
      // certificate and the first data-key epoch in the log
      if (log.heads().length === 0 && keystore.certificate.issuer === 'root') {
        const epoch = createEpoch({ swarm: keystore.swarmId, gen: 1, devices: [deviceId], recoveryPublicKey: created?.recoveryPublicKey ?? keystore.recoveryPublicKey })
        await log.appendControl([{ t: 'cert', cert: keystore.certificate }, epochOp(epoch.record)])
      }
      const node = new PeakNode(log, storage, keystore, lock, paths, created?.phrase, options.confirmations ?? 1)
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
      lock.release()
      throw err
    }
  }

  /** This device's id (its libp2p PeerId). */
  get deviceId (): DeviceId { return this.keystore.certificate.device }
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
      throw new InvalidCollectionNameError(`collection name ${JSON.stringify(String(name).slice(0, 80))} is invalid: expected a letter, then up to 63 letters, digits, "_", "-" or "."`)
    }
    let c = this.collectionsByName.get(name)
    if (c === undefined || options !== undefined) {
      c = new Collection(name as CollectionName, { log: this.log, storage: this.storage, checkOpen: () => this.checkOpen(), track: seq => this.confirmations.track(seq), live: this.live }, options)
      this.collectionsByName.set(name, c)
    }
    return c
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
      deviceSecretKey: this.keystore.deviceSecretKey
    }, options, this.confirmations)
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
    return await t.dial(addr, options)
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

  /** Every collection with documents or indexes, with counts. */
  async collections (): Promise<CollectionInfo[]> {
    this.checkOpen()
    return await this.storage.collections()
  }

  /** A snapshot of this node's identity, log and collections. */
  async status (): Promise<NodeStatus> {
    this.checkOpen()
    return {
      deviceId: this.deviceId,
      swarmId: this.swarmId,
      deviceName: this.deviceName,
      dir: this.dir,
      storage: { kind: this.storage.kind, location: this.storage.location },
      entries: await this.storage.entryCount(),
      versionVector: vectorToJson(this.log.versionVector()),
      collections: await this.storage.collections(),
      pendingEntries: await this.log.pendingCount(),
      confirmedSeq: this.confirmations.confirmedSeq(),
      ...(this.replicator?.network !== undefined ? { network: { multiaddrs: this.replicator.network.multiaddrs(), peers: this.replicator.peers(), syncing: this.replicator.syncState() } } : {})
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
    this.live.close()
    await this.ydocs.close().catch(() => {})
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
    throw new DataDirError(`${paths.database} belongs to device ${device ?? '?'} of swarm ${swarm ?? '?'}, but ${paths.keystore} is device ${keystore.certificate.device} of swarm ${keystore.swarmId}`)
  }
}
