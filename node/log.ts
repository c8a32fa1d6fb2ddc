/**
 * The node's log: the signed, encrypted Merkle-DAG of entries, with the in-memory state needed
 * to extend it (tips, clock, membership, keyring). Local writes and entries from peers go through
 * the same path: verified, then committed with their materialisation in one storage transaction,
 * then announced as events.
 */
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import {
  checkEntryLinks, createEntry, decodeControlPayload, decodeDataPayload, decodeEntry, encodeControlPayload, encodeDataPayload,
  entryIdOf, ENTRY_VERSION, HybridClock, MAX_UNSIGNED_BYTES, MAX_UNSIGNED_RUN, NotAMemberError, signChain, stampOf, verifyEntrySignature, MalformedError, TooLargeError,
  type ControlOp, type DataOp, type Entry, type EntryHeader, type EntryId, type LogView
} from '../crdt/index.js'
import {
  decodeRevocation, DecryptionError, encodeCertificate, InvalidCertificateError, Keyring, Membership, open, PayloadSealer, shareEpoch,
  UnknownEpochError, verifyCertificateChain, type DeviceId, type DeviceRevocation, type EpochRecord, type Recipient, type Signer, type SwarmId
} from '../identity/index.js'
import type { CommitItem, CommitResult, ControlRecord, DocChange, PendingApply, StorageProvider } from '../storage/index.js'
import { SqliteProvider, StorageClosedError, type EntryOpener } from '../storage/index.js'
import { DeviceRevokedError } from './errors.js'
import { createLogger } from './logger.js'

const logger = createLogger('log')
/** Storage meta key: this device's revocation as a peer proved it (see {@link Log.learnRevocation}). */
const REVOCATION_META = 'revocation'

/** Where a change came from. */
export type ChangeOrigin = 'local' | 'remote'

/** Documents changed by one commit. */
export interface ChangeEvent {
  readonly origin: ChangeOrigin
  readonly changes: readonly DocChange[]
  readonly entries: readonly Entry[]
}

/** Events of a {@link Log}. */
export interface LogEvents {
  /** Documents changed (local write or entries from a peer). */
  change: [ChangeEvent]
  /**
   * New entries, in log order: remote ones once committed; local ones once a chain signature
   * covers them (`sig`, on the last of them: see crdt/entry.ts), which is when other devices may
   * have them.
   */
  entries: [{ readonly origin: ChangeOrigin, readonly entries: readonly Entry[], readonly sig?: Uint8Array }]
  /** Yjs document updates were stored. */
  yjs: [{ readonly origin: ChangeOrigin, readonly updates: ReadonlyArray<{ readonly doc: string, readonly update: Uint8Array }> }]
  /** A member's entry had a payload that does not open or decode; it is kept as a no-op. */
  poison: [{ readonly entry: EntryId, readonly author: string, readonly reason: string }]
  /** A device was revoked (locally or by another device). */
  revoked: [{ readonly device: string, readonly after: number }]
  /** Documents were rebuilt from the log (after a revocation undid a device's late writes). */
  rebuilt: []
}

/** What a local append produced. */
export interface AppendResult {
  readonly entries: readonly Entry[]
  readonly changes: readonly DocChange[]
}

/** What ingesting a batch of remote entries did. */
export interface IngestResult {
  readonly applied: number
  readonly duplicates: number
  readonly changes: readonly DocChange[]
}

/** One problem found by {@link Log.verify}. */
export interface VerifyProblem {
  readonly pos: number
  readonly entry?: string
  readonly error: string
  readonly message: string
}

/** Result of a full log verification. */
export interface VerifyReport {
  readonly ok: boolean
  readonly entries: number
  readonly authors: number
  readonly problems: readonly VerifyProblem[]
  /** Whether the materialised documents equal a fresh replay of the log (when checked). */
  readonly stateMatches?: boolean
  readonly integrity: readonly string[]
}

/** The keys a log needs. */
export interface LogIdentity {
  readonly swarmId: SwarmId
  readonly rootPublicKey: Uint8Array
  readonly deviceId: DeviceId
  readonly signer: Signer
  readonly sealingSecret: Uint8Array
  readonly recoverySealingSecret?: Uint8Array
}

interface Tip { readonly seq: number, readonly cid: CID }

function cidKey (cid: CID | Uint8Array): string {
  return Buffer.from('bytes' in cid ? cid.bytes : cid).toString('base64')
}

function safeCidString (bytes: Uint8Array): string {
  try {
    return CID.decode(bytes).toString()
  } catch {
    return Buffer.from(bytes).toString('hex')
  }
}

/** A membership or key record stored in the database does not decode or verify. */
export class StoredRecordError extends Error {
  static readonly code = 'ERR_STORED_RECORD'
  override readonly name = 'StoredRecordError'
  readonly code = StoredRecordError.code
}

/** Runs async tasks one at a time, in call order. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve()
  run<T> (task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task)
    this.tail = result.catch(() => {})
    return result
  }
}

/** Encodes an epoch record as stored in the control table and carried in control ops. */
export function epochOp (record: EpochRecord): ControlOp {
  return { t: 'epoch', id: record.id, gen: record.gen, kc: record.kc, boxes: Object.fromEntries(record.boxes) }
}

function epochFromOp (op: { id: number, gen: number, kc: Uint8Array, boxes: Record<string, Uint8Array> }): EpochRecord {
  return { id: op.id, gen: op.gen, kc: op.kc, boxes: new Map(Object.entries(op.boxes)) as Map<Recipient, Uint8Array> }
}

/** State a batch is checked against; swapped in only after its commit succeeded. */
interface Staged {
  tips: Map<DeviceId, Tip>
  membership: Membership
  keyring: Keyring
  /** Revocations the batch applies. */
  revoked: Array<{ device: string, after: number }>
  /** Payloads that did not open, reported once the batch is committed. */
  poison: PoisonNote[]
}

/** A member's entry whose payload does not open or decode (kept as a no-op). */
interface PoisonNote { readonly entry: EntryId, readonly author: string, readonly reason: string }

/** The signed, encrypted log of one node. */
export class Log extends EventEmitter<LogEvents> {
  private tips = new Map<DeviceId, Tip>()
  /** Seq of each other author at our latest entry: deps list only what advanced since. */
  private depsSeen = new Map<DeviceId, number>()
  private membershipState: Membership
  private keyringState: Keyring
  private readonly serial = new Serial()
  private sealer: { epoch: number, sealer: PayloadSealer } | undefined
  /** This device's entries committed since its last chain signature (see {@link flush}). */
  private run: { entries: Entry[], bytes: number } = { entries: [], bytes: 0 }
  private flushQueued = false
  /** This device's revocation as a refusing peer proved it, before (or without) its log entry. */
  private learnedRevocation: DeviceRevocation | undefined
  readonly clock: HybridClock

  private constructor (readonly storage: StorageProvider, private readonly identity: LogIdentity, clock: HybridClock) {
    super()
    this.clock = clock
    this.membershipState = new Membership(identity.swarmId, identity.rootPublicKey)
    this.keyringState = this.newKeyring()
  }

  private newKeyring (): Keyring {
    const secrets = this.identity.recoverySealingSecret === undefined
      ? { deviceId: this.identity.deviceId, deviceSealingSecret: this.identity.sealingSecret }
      : { deviceId: this.identity.deviceId, deviceSealingSecret: this.identity.sealingSecret, recoverySealingSecret: this.identity.recoverySealingSecret }
    return new Keyring(this.identity.swarmId, secrets)
  }

  /** Loads a log's state from storage. */
  static async open (storage: StorageProvider, identity: LogIdentity, clock = new HybridClock()): Promise<Log> {
    const log = new Log(storage, identity, clock)
    for (const head of await storage.heads()) {
      const bytes = await storage.getEntry(head.cid)
      if (bytes === undefined) continue
      const entry = decodeEntry(bytes)
      log.tips.set(head.author as DeviceId, { seq: head.seq, cid: entry.cid })
      // this device stopped before it signed its last writes: they are still its own to sign
      if (head.author === identity.deviceId && entry.sig === undefined && await storage.entrySignature(entry.cid.bytes) === undefined) {
        await storage.setEntrySignature(entry.cid.bytes, signChain(entry.cid, identity.signer))
      }
      try { clock.observe(entry.header.clock) } catch { /* a far-future clock was accepted earlier; keep local time */ }
    }
    // records come in log order; those of one entry (a certificate chain) in no set order, so a
    // certificate whose issuer comes later in the same entry is tried again after it
    let todo = await storage.controlRecords()
    while (todo.length > 0) {
      const failed: Array<{ rec: ControlRecord, err: Error }> = []
      for (const rec of todo) {
        try {
          log.loadControlRecord(rec)
        } catch (err) {
          failed.push({ rec, err: err as Error })
        }
      }
      if (failed.length === todo.length) {
        const { rec, err } = failed[0] as { rec: ControlRecord, err: Error }
        throw new StoredRecordError(`${storage.location}: stored ${rec.kind} record ${rec.key} is invalid (${err.message}); the database was written by an incompatible PeakDB version or damaged`, { cause: err })
      }
      todo = failed.map(f => f.rec)
    }
    const learned = await storage.getMeta(REVOCATION_META)
    if (learned !== undefined) {
      try {
        // its issuer was checked when it was learned; the signature is checked again
        const { rev } = dagCbor.decode(Buffer.from(learned, 'base64')) as { rev: Uint8Array }
        log.learnedRevocation = log.checkRevocationProof(rev, [], false)
      } catch (err) {
        throw new StoredRecordError(`${storage.location}: stored revocation of this device is invalid (${(err as Error).message}); the database was damaged`)
      }
    }
    return log
  }

  private loadControlRecord (rec: ControlRecord): void {
    const value = dagCbor.decode(rec.bytes)
    switch (rec.kind) {
      case 'cert': this.membershipState.addCertificate(value); break
      case 'revoke': this.membershipState.addRevocation(value); break
      case 'epoch': this.keyringState.add(epochFromOp(value as { id: number, gen: number, kc: Uint8Array, boxes: Record<string, Uint8Array> })); break
    }
  }

  get swarmId (): SwarmId { return this.identity.swarmId }
  get deviceId (): DeviceId { return this.identity.deviceId }
  get membership (): Membership { return this.membershipState }
  get keyring (): Keyring { return this.keyringState }

  /**
   * This device's revocation, when it was revoked: from its own log, or as a peer that refused
   * it proved it. A revoked device appends nothing ({@link DeviceRevokedError}).
   */
  get revocation (): DeviceRevocation | undefined {
    return this.membershipState.revocationOf(this.identity.deviceId) ?? this.learnedRevocation
  }

  private checkNotRevoked (): void {
    const rev = this.revocation
    if (rev !== undefined) throw new DeviceRevokedError(rev)
  }

  /**
   * Verifies a revocation of this device that a peer presented (DAG-CBOR `rev`, plus the
   * certificate chain of its issuing device when this log does not know that device as a
   * member). Only the root key or a member device can have signed one that passes.
   */
  private checkRevocationProof (rev: Uint8Array, chain: readonly Uint8Array[], checkIssuer = true): DeviceRevocation {
    const r = decodeRevocation(rev, this.identity.swarmId, this.identity.rootPublicKey)
    if (r.device !== this.identity.deviceId) throw new InvalidCertificateError(`revocation is for ${r.device}, not for this device`)
    if (checkIssuer && r.issuer !== 'root' && !this.membershipState.isMember(r.issuer)) {
      verifyCertificateChain(r.issuer, chain, this.identity.swarmId, this.identity.rootPublicKey, d => this.membershipState.revocationOf(d) !== undefined)
    }
    return r
  }

  /**
   * Records a revocation of this device that a peer presented when it refused this device (see
   * {@link checkRevocationProof}); kept across restarts. Emits `revoked` the first time. Throws
   * {@link InvalidCertificateError} when it does not verify.
   */
  learnRevocation (rev: Uint8Array, chain: readonly Uint8Array[]): Promise<DeviceRevocation> {
    return this.serial.run(async () => {
      const r = this.checkRevocationProof(rev, chain)
      const known = this.revocation
      if (known !== undefined) return known
      await this.storage.setMeta(REVOCATION_META, Buffer.from(dagCbor.encode({ rev, chain: [...chain] })).toString('base64'))
      this.learnedRevocation = r
      logger.warn('this device was revoked', { by: r.issuer, at: new Date(r.issued).toISOString() })
      this.emit('revoked', { device: r.device, after: r.after })
      return r
    })
  }

  /** author -> highest contiguous seq. */
  versionVector (): Map<DeviceId, number> {
    const v = new Map<DeviceId, number>()
    for (const [author, tip] of this.tips) v.set(author, tip.seq)
    return v
  }

  /** Every author's latest entry. */
  heads (): Array<{ author: DeviceId, seq: number, entry: EntryId }> {
    return [...this.tips].map(([author, tip]) => ({ author, seq: tip.seq, entry: entryIdOf(tip.cid) }))
  }

  private sealerFor (epoch: number, key: Uint8Array): PayloadSealer {
    if (this.sealer?.epoch !== epoch) this.sealer = { epoch, sealer: new PayloadSealer(key) }
    return this.sealer.sealer
  }

  /** The next header of this device's chain; `seen` is updated with the deps it lists. */
  private nextHeader (tips: Map<DeviceId, Tip>, epoch: number, seen: Map<DeviceId, number>): EntryHeader {
    const me = this.identity.deviceId
    const tip = tips.get(me)
    const deps: CID[] = []
    for (const [author, t] of tips) {
      if (author !== me && (seen.get(author) ?? 0) < t.seq) {
        deps.push(t.cid)
        seen.set(author, t.seq)
      }
    }
    return { v: ENTRY_VERSION, swarm: this.identity.swarmId, author: me, seq: (tip?.seq ?? 0) + 1, prev: tip?.cid ?? null, deps, clock: this.clock.now(), epoch }
  }

  /**
   * Appends local data ops, sealed under the current epoch: one entry per element of `batches`,
   * all committed in one transaction.
   */
  append (batches: ReadonlyArray<readonly DataOp[]>): Promise<AppendResult> {
    return this.serial.run(async () => {
      this.checkNotRevoked()
      const me = this.identity.deviceId
      const epoch = this.keyringState.current()
      const sealer = this.sealerFor(epoch.id, epoch.key)
      const tips = new Map(this.tips)
      // deps count as seen only once the entries that list them are committed
      const seen = new Map(this.depsSeen)
      const entries: Entry[] = []
      const items: CommitItem[] = []
      for (const ops of batches) {
        const header = this.nextHeader(tips, epoch.id, seen)
        const plain = encodeDataPayload(ops)
        const entry = createEntry(header, aad => sealer.seal(plain, aad))
        entries.push(entry)
        items.push({ cid: entry.cid.bytes, author: me, seq: header.seq, bytes: entry.bytes, stamp: stampOf(header.clock, me), ops, control: [] })
        tips.set(me, { seq: header.seq, cid: entry.cid })
      }
      const result = await this.storage.commit(items)
      this.tips = tips
      this.depsSeen = seen
      this.announce('local', entries, result)
      await this.extendRun(entries)
      return { entries, changes: result.changes }
    })
  }

  /**
   * Signs this device's entries committed since its last chain signature (one signature on the
   * last of them covers them all) and hands them to `entries` listeners, which send them to
   * other devices. Runs by itself at the end of the event-loop turn that wrote them; call it to
   * have them out now (before serving a peer, verifying, closing).
   */
  flush (): Promise<void> {
    return this.serial.run(async () => await this.sealRun())
  }

  private async extendRun (entries: readonly Entry[]): Promise<void> {
    for (const entry of entries) {
      const run = this.run
      if (run.entries.length >= MAX_UNSIGNED_RUN || (run.entries.length > 0 && run.bytes + entry.bytes.length > MAX_UNSIGNED_BYTES)) await this.trySealRun()
      this.run.entries.push(entry)
      this.run.bytes += entry.bytes.length
    }
    if (this.flushQueued || this.run.entries.length === 0) return
    this.flushQueued = true
    setImmediate(() => {
      this.flushQueued = false
      this.flush().catch(err => {
        // closing: the next open signs what is left (Log.open)
        if (!(err instanceof StorageClosedError)) logger.warn('could not sign local entries', { error: (err as Error).message })
      })
    })
  }

  /** {@link sealRun} after a commit that succeeded: a failure leaves the run to the next try, not the write failed. */
  private async trySealRun (): Promise<void> {
    try {
      await this.sealRun()
    } catch (err) {
      logger.warn('could not sign local entries; trying again with the next ones', { error: (err as Error).message })
    }
  }

  private async sealRun (): Promise<void> {
    const entries = this.run.entries
    const last = entries[entries.length - 1]
    if (last === undefined) return
    const sig = signChain(last.cid, this.identity.signer)
    await this.storage.setEntrySignature(last.cid.bytes, sig)
    this.run = { entries: [], bytes: 0 }
    this.emit('entries', { origin: 'local', entries, sig })
  }

  /** Appends a plaintext control entry (membership and key records), validated like a remote one. */
  appendControl (ops: readonly ControlOp[]): Promise<Entry> {
    return this.serial.run(async () => {
      this.checkNotRevoked()
      const me = this.identity.deviceId
      const staged = this.stage()
      const seen = new Map(this.depsSeen)
      const header = this.nextHeader(staged.tips, 0, seen)
      const payload = encodeControlPayload(ops)
      const entry = createEntry(header, () => payload)
      const control = this.prepareControl(decodeControlPayload(payload), staged)
      if (!staged.membership.acceptsEntry(me, header.seq)) throw new NotAMemberError(`this device (${me}) is not a member of swarm ${this.identity.swarmId}`)
      staged.tips.set(me, { seq: header.seq, cid: entry.cid })
      const result = await this.storage.commit([{ cid: entry.cid.bytes, author: me, seq: header.seq, bytes: entry.bytes, stamp: stampOf(header.clock, me), ops: [], control }])
      this.depsSeen = seen
      const keysBefore = this.keyringState.openableCount()
      this.swapIn(staged)
      this.announce('local', [entry], result)
      // membership and keys go out at once
      await this.extendRun([entry])
      await this.trySealRun()
      if (this.keyringState.openableCount() > keysBefore) await this.openPending()
      await this.applyRevocations(staged.revoked)
      return entry
    })
  }

  /** A copy of the current state to check a batch against. */
  private stage (): Staged {
    return { tips: new Map(this.tips), membership: this.membershipState.clone(), keyring: this.keyringState.clone(), revoked: [], poison: [] }
  }

  private swapIn (staged: Staged): void {
    this.tips = staged.tips
    this.membershipState = staged.membership
    this.keyringState = staged.keyring
  }

  /** Reports changes made outside the log (device-local collections) to change listeners. */
  announceLocal (changes: readonly DocChange[]): void {
    if (changes.length > 0) this.emit('change', { origin: 'local', changes, entries: [] })
  }

  /** Emits what a commit did; local entries are announced when signed ({@link sealRun}). */
  private announce (origin: ChangeOrigin, entries: Entry[], result: CommitResult): void {
    if (origin === 'remote' && entries.length > 0) this.emit('entries', { origin, entries })
    if (result.changes.length > 0) this.emit('change', { origin, changes: result.changes, entries })
    if (result.yjs.length > 0) this.emit('yjs', { origin, updates: result.yjs })
  }

  /** Validates control ops against staged state and returns the records to persist. */
  private prepareControl (ops: readonly ControlOp[], staged: Staged): ControlRecord[] {
    const records: ControlRecord[] = []
    for (const op of ops) {
      switch (op.t) {
        case 'cert': {
          const cert = staged.membership.addCertificate(op.cert)
          records.push({ kind: 'cert', key: cert.device, bytes: encodeCertificate(cert) })
          break
        }
        case 'revoke': {
          const known = staged.membership.revocationOf((op.rev as { device?: string } | null)?.device ?? '')
          const rev = staged.membership.addRevocation(op.rev)
          records.push({ kind: 'revoke', key: rev.device, bytes: dagCbor.encode(rev) })
          if (known === undefined) staged.revoked.push({ device: rev.device, after: rev.after })
          break
        }
        case 'epoch': {
          staged.keyring.add(epochFromOp(op))
          // an epoch may be shared several times (more recipients): one row per distinct record
          const bytes = dagCbor.encode(op)
          records.push({ kind: 'epoch', key: `${op.id}:${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}`, bytes })
          break
        }
      }
    }
    return records
  }

  /**
   * Opens and decodes a data entry's payload. A payload that does not open or decode although
   * its signature and author are valid (a misbehaving member device) is kept in the log as a
   * no-op, the same way on every device, so that it cannot stall replication.
   */
  private openOps (entry: Entry, keyring: Keyring, poison?: PoisonNote[]): DataOp[] {
    try {
      return decodeDataPayload(open(keyring.key(entry.header.epoch), entry.payload, entry.headerBytes))
    } catch (err) {
      if (!(err instanceof DecryptionError || err instanceof MalformedError || err instanceof TooLargeError)) throw err
      const note = { entry: entryIdOf(entry.cid), author: entry.header.author, reason: (err as Error).message }
      if (poison !== undefined) poison.push(note)
      else this.reportPoison([note])
      return []
    }
  }

  private reportPoison (notes: readonly PoisonNote[]): void {
    for (const note of notes) {
      logger.warn('entry payload ignored', { ...note })
      this.emit('poison', note)
    }
  }

  /**
   * Verifies one decoded entry against staged state and returns what to commit, or undefined
   * for an entry the log already holds (same content address: nothing to check). The caller
   * checks a signature that covers the entry (see {@link Log.ingest}) before anything of the
   * batch is committed.
   */
  private checkEntry (entry: Entry, staged: Staged, view: LogView): CommitItem | undefined {
    if (checkEntryLinks(entry, view) === 'duplicate') return undefined
    const h = entry.header
    this.clock.checkDrift(h.clock)
    let ops: DataOp[] = []
    let control: ControlRecord[] = []
    let pending = false
    if (staged.membership.entryStatus(h.author, h.seq) === 'quarantined') {
      // written by a revoked device after its revocation: kept, changes nothing
      staged.tips.set(h.author, { seq: h.seq, cid: entry.cid })
      return { cid: entry.cid.bytes, author: h.author, seq: h.seq, bytes: entry.bytes, stamp: stampOf(h.clock, h.author), ops: [], control: [], quarantined: true }
    }
    if (h.epoch === 0) {
      control = this.prepareControl(decodeControlPayload(entry.payload), staged)
    }
    if (!staged.membership.acceptsEntry(h.author, h.seq)) {
      throw new NotAMemberError(`entry ${entry.cid.toString()}: author ${h.author} is not a member of swarm ${this.identity.swarmId}`)
    }
    if (h.epoch !== 0) {
      if (staged.keyring.canOpen(h.epoch)) ops = this.openOps(entry, staged.keyring, staged.poison)
      else if (staged.keyring.knows(h.epoch)) pending = true
      else throw new UnknownEpochError(h.epoch, `entry ${entry.cid.toString()} is sealed under unknown data-key epoch ${h.epoch}`)
    }
    staged.tips.set(h.author, { seq: h.seq, cid: entry.cid })
    return { cid: entry.cid.bytes, author: h.author, seq: h.seq, bytes: entry.bytes, stamp: stampOf(h.clock, h.author), ops, control, pending }
  }

  /**
   * Quarantines what revoked devices wrote after their revocation. When some of it had already
   * been applied here (it arrived before the revocation), the documents are rebuilt from the
   * log without it, so that every device ends with the same state.
   */
  private async applyRevocations (revoked: ReadonlyArray<{ device: string, after: number }>): Promise<void> {
    let undo = 0
    for (const r of revoked) {
      undo += await this.storage.quarantine(r.device, r.after)
      this.emit('revoked', r)
    }
    if (undo === 0) return
    logger.warn('rebuilding documents without writes of revoked devices', { entries: undo })
    await this.rematerialize(this.storage, this.membershipState, this.keyringState)
    this.emit('rebuilt')
  }

  private async rematerialize (storage: StorageProvider, membership: Membership, keyring: Keyring): Promise<void> {
    await storage.rematerialize(this.opener(membership, keyring))
  }

  private opener (membership: Membership, keyring: Keyring): EntryOpener {
    return row => {
      const entry = decodeEntry(row.bytes)
      if (entry.header.epoch === 0 || !keyring.canOpen(entry.header.epoch)) return undefined
      if (membership.entryStatus(entry.header.author, entry.header.seq) !== 'member') return undefined
      return { stamp: stampOf(entry.header.clock, entry.header.author), ops: this.openOps(entry, keyring) }
    }
  }

  /**
   * Opens stored entries for replay, as the log materialised them: their stamp and ops, or
   * undefined for entries whose ops are not materialised (sealed to a key this device lacks,
   * of a revoked device). Routed providers catch up and collections move with it.
   */
  entryOpener (): EntryOpener {
    return this.opener(this.membershipState, this.keyringState)
  }

  /**
   * Materialises stored entries whose epoch key has become available (shared with this device
   * after the entries arrived).
   */
  private async openPending (): Promise<void> {
    for (let after = 0; ;) {
      const rows = await this.storage.pendingEntries(after, 500)
      if (rows.length === 0) return
      const items: PendingApply[] = []
      for (const row of rows) {
        after = row.pos
        const entry = decodeEntry(row.bytes)
        if (!this.keyringState.canOpen(entry.header.epoch)) continue
        items.push({ cid: row.cid, pos: row.pos, stamp: stampOf(entry.header.clock, entry.header.author), ops: this.openOps(entry, this.keyringState) })
      }
      if (items.length > 0) {
        const result = await this.storage.applyPending(items)
        this.announce('remote', [], result)
      }
    }
  }

  /**
   * Takes epoch key boxes a peer handed over directly (sealed to this device); opens what it can
   * and materialises entries that were waiting for those keys.
   */
  deliverKeys (boxes: ReadonlyArray<{ id: number, box: Uint8Array }>): Promise<number> {
    return this.serial.run(async () => {
      let opened = 0
      for (const b of boxes) if (this.keyringState.deliver(b.id, b.box)) opened++
      if (opened > 0) await this.openPending()
      return opened
    })
  }

  /** Key boxes of every epoch this device can open, sealed to `device` (for a verified member). */
  keyBoxesFor (device: DeviceId): Array<{ id: number, box: Uint8Array }> {
    const out: Array<{ id: number, box: Uint8Array }> = []
    for (const record of this.keyringState.allRecords()) {
      if (!this.keyringState.canOpen(record.id)) continue
      const shared = shareEpoch(this.identity.swarmId, record, this.keyringState.key(record.id), [device])
      const box = shared.boxes.get(device)
      if (box !== undefined) out.push({ id: record.id, box })
    }
    return out
  }

  /** Number of stored entries whose payload this device cannot open yet. */
  async pendingCount (): Promise<number> {
    let n = 0
    for (let after = 0; ;) {
      const rows = await this.storage.pendingEntries(after, 1000)
      if (rows.length === 0) return n
      n += rows.length
      after = (rows[rows.length - 1] as { pos: number }).pos
    }
  }

  /**
   * Verifies and applies entries from a peer, in the order given (which must be causal), with
   * the chain signatures that came with them (`sigs`: index in `list` to signature). Each
   * author's last new entry must be covered by a signature (see crdt/entry.ts). All or nothing:
   * the first invalid entry rejects the whole batch with a typed error and nothing of it is
   * applied. Entries already held are skipped.
   */
  ingest (list: readonly Uint8Array[], sigs?: ReadonlyMap<number, Uint8Array>): Promise<IngestResult> {
    return this.serial.run(async () => {
      const entries = list.map(bytes => decodeEntry(bytes))
      const wanted = new Map<string, Uint8Array>()
      for (const e of entries) {
        wanted.set(cidKey(e.cid), e.cid.bytes)
        for (const d of e.header.deps) wanted.set(cidKey(d), d.bytes)
      }
      const present = await this.storage.hasEntries([...wanted.values()])
      const staged = this.stage()
      const view: LogView = {
        swarm: this.identity.swarmId,
        tip: author => staged.tips.get(author),
        has: cid => present.has(cidKey(cid))
      }
      const items: CommitItem[] = []
      const accepted: Entry[] = []
      // An author's new entries in one batch form a hash chain (checkEntryLinks makes each link
      // its predecessor by CID), so one valid signature on the *last accepted* entry of each
      // author authenticates all of them. Entries already held prove nothing about the ones
      // around them: coverage is taken from what this batch actually adds, and checked before
      // anything is committed.
      const lastNewOfAuthor = new Map<string, { entry: Entry, at: number, item: number }>()
      entries.forEach((entry, at) => {
        const item = this.checkEntry(entry, staged, view)
        if (item === undefined) return
        items.push(item)
        accepted.push(entry)
        lastNewOfAuthor.set(entry.header.author, { entry, at, item: items.length - 1 })
        present.add(cidKey(entry.cid))
      })
      for (const { entry, at, item } of lastNewOfAuthor.values()) {
        const sig = entry.sig === undefined ? sigs?.get(at) : undefined
        verifyEntrySignature(entry, sig)
        // kept, so that this device can hand the chain on to others
        if (sig !== undefined) items[item] = { ...items[item] as CommitItem, sig }
      }
      if (items.length === 0) return { applied: 0, duplicates: entries.length, changes: [] }
      const result = await this.storage.commit(items)
      const keysBefore = this.keyringState.openableCount()
      this.swapIn(staged)
      for (const e of accepted) this.clock.observe(e.header.clock)
      this.announce('remote', accepted, result)
      this.reportPoison(staged.poison)
      if (this.keyringState.openableCount() > keysBefore) await this.openPending()
      await this.applyRevocations(staged.revoked)
      return { applied: items.length, duplicates: entries.length - items.length, changes: result.changes }
    })
  }

  /**
   * Re-verifies the whole log from its first entry: content addresses, signatures, chains and
   * deps, membership, decryption and payload shape, heads. It checks the log as it stands when
   * called (this device's last writes signed first); what lands while it reads is left to the
   * next call. With `rebuild`, also replays the log into a scratch database and compares the
   * materialised documents (with the documents as they are when the comparison runs: writes
   * made meanwhile show as a difference).
   */
  async verify (options: { rebuild?: boolean, onProgress?: (done: number, total: number) => void } = {}): Promise<VerifyReport> {
    // the log as it stands now, signed: writes and entries from peers that land while it is
    // read come after these `total` entries (the log only grows) and are left out
    const cut = await this.serial.run(async () => {
      await this.sealRun()
      return { tips: new Map(this.tips), total: await this.storage.entryCount() }
    })
    const total = cut.total
    const staged: Staged = { tips: new Map(), membership: new Membership(this.identity.swarmId, this.identity.rootPublicKey), keyring: this.newKeyring(), revoked: [], poison: [] }
    // keys handed over directly by peers are not in the log: give the replay the ones held now
    for (const { id, box } of this.keyBoxesFor(this.identity.deviceId)) staged.keyring.deliver(id, box)
    const seen = new Set<string>()
    const view: LogView = { swarm: this.identity.swarmId, tip: a => staged.tips.get(a), has: cid => seen.has(cidKey(cid)) }
    const problems: VerifyProblem[] = []
    const replay = options.rebuild === true ? await SqliteProvider.open({ path: ':memory:' }) : undefined
    // entries whose key was shared later in the log: opened once the whole log is read
    const laterOpened: Entry[] = []
    // per author, its entries since its last signature (covered by the next one)
    const uncovered = new Map<string, { first: number, last: number }>()
    let done = 0
    try {
      for (let after = 0; done < total;) {
        const page = (await this.storage.scanEntries(after, 500)).slice(0, total - done)
        if (page.length === 0) break
        const items: CommitItem[] = []
        for (const row of page) {
          after = row.pos
          done++
          try {
            const entry = decodeEntry(row.bytes, CID.decode(row.cid))
            const item = this.checkEntry(entry, staged, view)
            const author = entry.header.author
            if (entry.sig !== undefined || row.sig != null) {
              verifyEntrySignature(entry, row.sig ?? undefined)
              uncovered.delete(author)
            } else {
              uncovered.set(author, { first: uncovered.get(author)?.first ?? entry.header.seq, last: entry.header.seq })
            }
            if (item !== undefined) items.push(item)
            if (item?.pending === true) laterOpened.push(entry)
            seen.add(cidKey(entry.cid))
          } catch (err) {
            problems.push({ pos: row.pos, entry: safeCidString(row.cid), error: (err as Error).name, message: (err as Error).message })
          }
        }
        if (replay !== undefined && items.length > 0) await replay.commit(items)
        options.onProgress?.(done, total)
      }
      const opened = laterOpened.filter(e => staged.keyring.canOpen(e.header.epoch))
      if (replay !== undefined && opened.length > 0) {
        await replay.applyPending(opened.map(e => ({ cid: e.cid.bytes, stamp: stampOf(e.header.clock, e.header.author), ops: this.openOps(e, staged.keyring) })))
      }
      if (replay !== undefined && staged.revoked.length > 0) {
        // as applyRevocations does live: late writes of revoked devices change nothing
        for (const r of staged.revoked) await replay.quarantine(r.device, r.after)
        await this.rematerialize(replay, staged.membership, staged.keyring)
      }
      for (const [author, run] of uncovered) {
        problems.push({ pos: -1, error: 'InvalidSignatureError', message: `entries ${run.first}..${run.last} of ${author} are not covered by a signature of their author` })
      }
      for (const [author, tip] of cut.tips) {
        const rebuilt = staged.tips.get(author)
        if (rebuilt === undefined || rebuilt.seq !== tip.seq || !rebuilt.cid.equals(tip.cid)) {
          problems.push({ pos: -1, error: 'HeadMismatchError', message: `head of ${author} is seq ${tip.seq} but the log verifies up to ${rebuilt?.seq ?? 0}` })
        }
      }
      const integrity = await this.storage.checkIntegrity()
      let stateMatches: boolean | undefined
      if (replay !== undefined) {
        stateMatches = (await replay.stateDigest()) === (await this.storage.stateDigest())
        if (!stateMatches) problems.push({ pos: -1, error: 'StateMismatchError', message: 'materialised documents differ from a replay of the log' })
      }
      const report = { ok: problems.length === 0 && integrity.length === 0, entries: done, authors: staged.tips.size, problems, integrity }
      return stateMatches === undefined ? report : { ...report, stateMatches }
    } finally {
      await replay?.close()
    }
  }
}
