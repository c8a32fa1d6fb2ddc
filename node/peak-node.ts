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
import { DataDirError, InvalidCollectionNameError, NodeClosedError, NotInitializedError } from './errors.js'
import { epochOp, Log, type ChangeEvent, type VerifyReport } from './log.js'

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
}

/** Events of a node. */
export interface PeakNodeEvents {
  /** Documents changed, by a local write or by entries from a peer. */
  change: [ChangeEvent]
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

  private constructor (
    readonly log: Log,
    readonly storage: StorageProvider,
    private readonly keystore: KeystoreData,
    private readonly lock: DirLock,
    paths: DataDirPaths,
    recoveryPhrase: string | undefined
  ) {
    super()
    this.paths = paths
    this.recoveryPhrase = recoveryPhrase
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
      return new PeakNode(log, storage, keystore, lock, paths, created?.phrase)
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
      c = new Collection(name as CollectionName, { log: this.log, storage: this.storage, checkOpen: () => this.checkOpen() }, options)
      this.collectionsByName.set(name, c)
    }
    return c
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
      collections: await this.storage.collections()
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
