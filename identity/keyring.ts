/**
 * Data-key epochs. Payloads are sealed under random 32-byte epoch keys; each epoch record holds
 * the key sealed (key boxes) to every member device and to the user's recovery key. A device
 * opens the boxes addressed to it; the newest epoch it can open (highest generation, then
 * highest id) is the one new writes are sealed under.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { openKeyBox, sealKeyTo, sealingPublicKeyOf } from './key-box.js'
import { publicKeyFromDeviceId, type DeviceId } from './device-id.js'
import { DecryptionError, UnknownEpochError } from './errors.js'
import type { SwarmId } from './user-root.js'

/** Box recipient: a member device, or the user's recovery key. */
export type Recipient = DeviceId | 'recovery'

/** A data-key epoch as it travels in the log: its key sealed to each recipient. */
export interface EpochRecord {
  /** Random non-zero u32 naming the epoch (entries carry it in their header). */
  readonly id: number
  /** Generation: each rotation creates generation + 1. */
  readonly gen: number
  /** Key commitment: {@link keyCommitment} of the epoch key; an opened box must match it. */
  readonly kc: Uint8Array
  readonly boxes: ReadonlyMap<Recipient, Uint8Array>
}

/**
 * A commitment to an epoch key (16 bytes of a domain-separated SHA-256), published in the
 * signed epoch record so that a box holding a different key is recognised and ignored.
 */
export function keyCommitment (swarm: SwarmId, id: number, key: Uint8Array): Uint8Array {
  return createHash('sha256').update(`peakdb/epoch-key/v1\0${swarm}\0${id}\0`).update(key).digest().subarray(0, 16)
}

/** How a keyring opens boxes: this device's X25519 secret, and the recovery secret when known. */
export interface KeyringSecrets {
  readonly deviceId: DeviceId
  readonly deviceSealingSecret: Uint8Array
  readonly recoverySealingSecret?: Uint8Array
}

const enc = new TextEncoder()

/** Associated data binding a key box to its swarm and epoch. */
export function epochContext (swarm: SwarmId, id: number): Uint8Array {
  return enc.encode(`peakdb/epoch/v1\0${swarm}\0${id}`)
}

/** A fresh random epoch id (non-zero u32; 0 marks plaintext control entries). */
export function randomEpochId (): number {
  let id = 0
  while (id === 0) id = randomBytes(4).readUInt32BE(0)
  return id
}

/** Creates a new epoch: a random key sealed to each device and the recovery key. */
export function createEpoch (init: { swarm: SwarmId, gen: number, devices: Iterable<DeviceId>, recoveryPublicKey: Uint8Array, id?: number }): { record: EpochRecord, key: Uint8Array } {
  const id = init.id ?? randomEpochId()
  const key = new Uint8Array(randomBytes(32))
  const context = epochContext(init.swarm, id)
  const boxes = new Map<Recipient, Uint8Array>()
  for (const device of init.devices) {
    boxes.set(device, sealKeyTo(sealingPublicKeyOf(publicKeyFromDeviceId(device)), key, context))
  }
  boxes.set('recovery', sealKeyTo(init.recoveryPublicKey, key, context))
  return { record: { id, gen: init.gen, kc: keyCommitment(init.swarm, id, key), boxes }, key }
}

/** The epoch keys this device can open, and the records of those it cannot. */
export class Keyring {
  private readonly keys = new Map<number, { gen: number, key: Uint8Array }>()
  private readonly records = new Map<number, EpochRecord>()
  private readonly delivered = new Map<number, Uint8Array>()
  private currentId: number | undefined

  constructor (private readonly swarm: SwarmId, private readonly secrets: KeyringSecrets) {}

  /** An independent copy, for validating a batch before it is committed. */
  clone (): Keyring {
    const k = new Keyring(this.swarm, this.secrets)
    for (const [id, v] of this.keys) k.keys.set(id, v)
    for (const [id, v] of this.records) k.records.set(id, v)
    for (const [id, v] of this.delivered) k.delivered.set(id, v)
    k.currentId = this.currentId
    return k
  }

  /**
   * Learns an epoch record. Returns true when this device could open it (a box for it or for the
   * recovery key it holds), false when the epoch is sealed to others only.
   */
  add (record: EpochRecord): boolean {
    const known = this.records.get(record.id)
    // the same epoch may be shared again later with boxes for more recipients: keep the union
    // (the first record's generation and key commitment stay authoritative)
    const merged: EpochRecord = known === undefined
      ? record
      : { id: record.id, gen: known.gen, kc: known.kc, boxes: new Map([...known.boxes, ...record.boxes]) }
    this.records.set(record.id, merged)
    if (this.keys.has(record.id)) return true
    const candidates: Array<[Uint8Array | undefined, Uint8Array]> = [
      [merged.boxes.get(this.secrets.deviceId), this.secrets.deviceSealingSecret],
      [merged.boxes.get('recovery'), this.secrets.recoverySealingSecret ?? new Uint8Array(0)],
      [this.delivered.get(record.id), this.secrets.deviceSealingSecret]
    ]
    for (const [box, secret] of candidates) {
      if (box !== undefined && secret.length > 0 && this.tryOpen(merged, box, secret)) return true
    }
    return false
  }

  private tryOpen (record: EpochRecord, box: Uint8Array, secret: Uint8Array): boolean {
    let key: Uint8Array
    try {
      key = openKeyBox(secret, box, epochContext(this.swarm, record.id))
    } catch (err) {
      if (err instanceof DecryptionError) return false
      throw err
    }
    // a box is only as good as the key it holds: it must match the signed record's commitment
    const kc = keyCommitment(this.swarm, record.id, key)
    if (!(record.kc instanceof Uint8Array) || kc.length !== record.kc.length || !timingSafeEqual(kc, record.kc)) return false
    this.keys.set(record.id, { gen: record.gen, key })
    this.delivered.delete(record.id)
    this.updateCurrent(record.id, record.gen)
    return true
  }

  /**
   * Takes a key box sealed to this device for epoch `id` handed over directly by a peer (before
   * the share record arrives through the log). Returns true when it opened a key now; a box for
   * an epoch whose record is not known yet is kept until the record arrives.
   */
  deliver (id: number, box: Uint8Array): boolean {
    if (this.keys.has(id)) return false
    const record = this.records.get(id)
    if (record === undefined) {
      if (this.delivered.size < 1024) this.delivered.set(id, box)
      return false
    }
    return this.tryOpen(record, box, this.secrets.deviceSealingSecret)
  }

  /** Adds a key this device created itself. */
  addOwn (record: EpochRecord, key: Uint8Array): void {
    this.records.set(record.id, record)
    this.keys.set(record.id, { gen: record.gen, key })
    this.updateCurrent(record.id, record.gen)
  }

  private updateCurrent (id: number, gen: number): void {
    const cur = this.currentId === undefined ? undefined : this.keys.get(this.currentId)
    if (cur === undefined || gen > cur.gen || (gen === cur.gen && id > (this.currentId ?? 0))) this.currentId = id
  }

  /** How many epochs this device can open. */
  openableCount (): number {
    return this.keys.size
  }

  /** True when an epoch record with this id is known (openable or not). */
  knows (id: number): boolean {
    return this.records.has(id)
  }

  /** True when this device holds the key of epoch `id`. */
  canOpen (id: number): boolean {
    return this.keys.has(id)
  }

  /** The key of epoch `id`. Throws {@link UnknownEpochError} when this device does not hold it. */
  key (id: number): Uint8Array {
    const k = this.keys.get(id)
    if (k === undefined) throw new UnknownEpochError(id, this.records.has(id) ? `data-key epoch ${id} is not sealed to this device` : `unknown data-key epoch ${id}`)
    return k.key
  }

  /** The epoch new writes are sealed under. */
  current (): { id: number, gen: number, key: Uint8Array } {
    if (this.currentId === undefined) throw new UnknownEpochError(0, 'no data-key epoch is available to this device')
    const k = this.keys.get(this.currentId)
    if (k === undefined) throw new UnknownEpochError(this.currentId)
    return { id: this.currentId, gen: k.gen, key: k.key }
  }

  /** The highest generation known among all records (openable or not). */
  highestGeneration (): number {
    let gen = 0
    for (const r of this.records.values()) gen = Math.max(gen, r.gen)
    return gen
  }

  /** All known epoch records. */
  allRecords (): EpochRecord[] {
    return [...this.records.values()]
  }
}

/**
 * Which epochs this device should share with which members: every epoch it can open that has no
 * box for a current member. This device counts too: a key it holds only through the recovery
 * key or a direct handover is then kept in the log for its next start. Pure; the node seals and
 * publishes the boxes.
 */
export function planEpochShares (keyring: Keyring, members: readonly DeviceId[], self: DeviceId): Array<{ record: EpochRecord, key: Uint8Array, recipients: DeviceId[] }> {
  const out: Array<{ record: EpochRecord, key: Uint8Array, recipients: DeviceId[] }> = []
  const everyone = members.includes(self) ? members : [...members, self]
  for (const record of keyring.allRecords()) {
    if (!keyring.canOpen(record.id)) continue
    const recipients = everyone.filter(m => !record.boxes.has(m))
    if (recipients.length > 0) out.push({ record, key: keyring.key(record.id), recipients })
  }
  return out
}

/**
 * True when the newest epoch this device writes under is still sealed to a revoked device:
 * then a new epoch must be started (revocation rotates keys).
 */
export function needsRotation (keyring: Keyring, isRevoked: (device: string) => boolean): boolean {
  let current: { id: number } | undefined
  try {
    current = keyring.current()
  } catch {
    return false
  }
  const record = keyring.allRecords().find(r => r.id === current?.id)
  return record !== undefined && [...record.boxes.keys()].some(r => r !== 'recovery' && isRevoked(r))
}

/** Boxes of an existing epoch key for more recipients (a share record of the same epoch). */
export function shareEpoch (swarm: SwarmId, record: EpochRecord, key: Uint8Array, recipients: readonly DeviceId[]): EpochRecord {
  const context = epochContext(swarm, record.id)
  const boxes = new Map<Recipient, Uint8Array>()
  for (const device of recipients) boxes.set(device, sealKeyTo(sealingPublicKeyOf(publicKeyFromDeviceId(device)), key, context))
  return { id: record.id, gen: record.gen, kc: record.kc, boxes }
}
