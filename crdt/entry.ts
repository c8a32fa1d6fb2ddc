/**
 * Log entries: the unit of replication. An entry is a DAG-CBOR map `{ h: header, p: payload }`,
 * content-addressed by a CIDv1 (dag-cbor, sha2-256).
 *
 * Header `{ v, swarm, author, seq, prev, deps, clock, epoch }`: `seq` counts the author's own
 * entries from 1, `prev` links the author's previous entry, `deps` are other authors' heads the
 * author had seen, `clock` is a hybrid logical clock `[ms, counter]`, and `epoch` names the
 * data-key epoch the payload is sealed under (0: a plaintext control payload). Sealed payloads
 * bind dagcbor(header) as associated data, so a payload cannot be moved under another header.
 *
 * Chain signatures: an entry does not carry a signature. The author (a DeviceId, which contains
 * its public key) signs `"peakdb/chain/v2\0" || cid` of the last entry of a run of its own
 * entries; because each entry names its predecessor by CID, that one signature authenticates the
 * whole chain up to it. A device signs once per run of local writes (at the end of an event-loop
 * turn, or every {@link MAX_UNSIGNED_RUN} entries / {@link MAX_UNSIGNED_BYTES} bytes) and hands
 * an entry to other devices only once a signature covers it; the signature travels next to the
 * entry bytes (sync batches, gossip) and is stored beside the entry.
 *
 * Version 1 entries (`{ h, p, s }`, written by earlier releases) carried their own signature over
 * `"peakdb/entry/v1\0" || dagcbor(header) || sha256(payload)`; they are still read, verified and
 * relayed, each covering itself.
 */
import { createHash } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { isDeviceId, publicKeyFromDeviceId, verifySignature, type DeviceId, type Signer } from '../identity/index.js'
import { decodeDagCbor, decodeFirstDagCbor } from './capped-dag-cbor.js'
import { checkHlc, type Hlc } from './hlc.js'
import { ForkError, HashMismatchError, InvalidSignatureError, MalformedError, MissingDependencyError, SeqGapError, TooLargeError, WrongSwarmError } from './errors.js'
import { isPlainObject } from './json-value.js'

/** The string form (base32 CIDv1) of an entry's content address. */
export type EntryId = string & { readonly __brand: 'EntryId' }

/** Largest encoded entry accepted from anyone. */
export const MAX_ENTRY_BYTES = 16 * 1024 * 1024
/** Most deps an entry may list. */
export const MAX_DEPS = 1024
/** Most DAG-CBOR items of an entry: its deps (a tag and bytes each) and a few dozen others. */
const MAX_ENTRY_ITEMS = 2 * MAX_DEPS + 64
/** The entry version this release writes. */
export const ENTRY_VERSION = 2
/** Entries of earlier releases: signed one by one (see the module comment). */
export const LEGACY_ENTRY_VERSION = 1
/** Most of its own entries a device leaves under one chain signature. */
export const MAX_UNSIGNED_RUN = 256
/** Most bytes of its own entries a device leaves under one chain signature (one larger entry is a run by itself). */
export const MAX_UNSIGNED_BYTES = 1024 * 1024
const SHA2_256 = 0x12
const SIG_DOMAIN_V1 = new TextEncoder().encode('peakdb/entry/v1\0')
const CHAIN_SIG_DOMAIN = new TextEncoder().encode('peakdb/chain/v2\0')

/** An entry header (see the module comment). */
export interface EntryHeader {
  readonly v: 1 | 2
  readonly swarm: string
  readonly author: DeviceId
  readonly seq: number
  readonly prev: CID | null
  readonly deps: readonly CID[]
  readonly clock: Hlc
  readonly epoch: number
}

/** A decoded, encoded and addressed entry. */
export interface Entry {
  readonly cid: CID
  readonly bytes: Uint8Array
  readonly header: EntryHeader
  /** dagcbor(header): the signed prefix and the sealing AAD. */
  readonly headerBytes: Uint8Array
  /** Ciphertext (epoch > 0) or plaintext control payload (epoch 0). */
  readonly payload: Uint8Array
  /** The entry's own signature: version 1 entries only (see the module comment). */
  readonly sig: Uint8Array | undefined
}

function headerValue (h: EntryHeader): Record<string, unknown> {
  return { v: h.v, swarm: h.swarm, author: h.author, seq: h.seq, prev: h.prev, deps: [...h.deps], clock: [h.clock.ms, h.clock.c], epoch: h.epoch }
}

/** dagcbor(header), the bytes a payload is sealed against. */
export function encodeHeader (h: EntryHeader): Uint8Array {
  return dagCbor.encode(headerValue(h))
}

function signedMessageV1 (headerBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  const m = new Uint8Array(SIG_DOMAIN_V1.length + headerBytes.length + 32)
  m.set(SIG_DOMAIN_V1)
  m.set(headerBytes, SIG_DOMAIN_V1.length)
  m.set(createHash('sha256').update(payload).digest(), SIG_DOMAIN_V1.length + headerBytes.length)
  return m
}

function chainMessage (cid: CID): Uint8Array {
  const m = new Uint8Array(CHAIN_SIG_DOMAIN.length + cid.bytes.length)
  m.set(CHAIN_SIG_DOMAIN)
  m.set(cid.bytes, CHAIN_SIG_DOMAIN.length)
  return m
}

/**
 * DAG-CBOR of `{ h, p }` (or `{ h, p, s }` for a version 1 entry) given the already-encoded
 * header: the map's canonical form is fixed (one-letter keys in order h, p, s), so it is
 * assembled around the header bytes instead of encoding the header a second time.
 * Byte-identical to `dagCbor.encode` (tested).
 */
export function frameEntry (headerBytes: Uint8Array, payload: Uint8Array, sig?: Uint8Array): Uint8Array {
  const len = payload.length
  const lenBytes = len < 24 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5
  const out = new Uint8Array(1 + 2 + headerBytes.length + 2 + lenBytes + len + (sig === undefined ? 0 : 2 + 2 + sig.length))
  const view = new DataView(out.buffer)
  let o = 0
  out[o++] = sig === undefined ? 0xa2 : 0xa3 // map(2) or map(3)
  out[o++] = 0x61; out[o++] = 0x68 // "h"
  out.set(headerBytes, o); o += headerBytes.length
  out[o++] = 0x61; out[o++] = 0x70 // "p"
  if (lenBytes === 1) out[o++] = 0x40 + len
  else if (lenBytes === 2) { out[o++] = 0x58; out[o++] = len }
  else if (lenBytes === 3) { out[o++] = 0x59; view.setUint16(o, len); o += 2 }
  else { out[o++] = 0x5a; view.setUint32(o, len); o += 4 }
  out.set(payload, o); o += len
  if (sig === undefined) return out
  out[o++] = 0x61; out[o++] = 0x73 // "s"
  out[o++] = 0x58; out[o++] = sig.length
  out.set(sig, o)
  return out
}

/**
 * How many of `rows` (entries in log order) can go to another device as they are: the longest
 * prefix after which every author's last entry carries a signature (its own, or a stored chain
 * signature), so that each author's part verifies.
 */
export function coveredPrefix (rows: ReadonlyArray<{ readonly author: string, readonly bytes: Uint8Array, readonly sig?: Uint8Array | null }>): number {
  const open = new Set<string>()
  let n = 0
  rows.forEach((row, i) => {
    if (row.sig != null || isSelfSigned(row.bytes)) open.delete(row.author)
    else open.add(row.author)
    if (open.size === 0) n = i + 1
  })
  return n
}

/**
 * True for stored or received entry bytes that carry their own signature (version 1). Every
 * entry is stored in canonical form, where the map header tells the two versions apart.
 */
export function isSelfSigned (bytes: Uint8Array): boolean {
  return bytes[0] === 0xa3
}

/** The CID (dag-cbor, sha2-256) of encoded entry bytes. */
export function cidOf (bytes: Uint8Array): CID {
  const hash = createHash('sha256').update(bytes).digest()
  return CID.createV1(dagCbor.code, Digest.create(SHA2_256, new Uint8Array(hash.buffer, hash.byteOffset, hash.length)))
}

/** The string id of a CID. */
export function entryIdOf (cid: CID): EntryId {
  return cid.toString() as EntryId
}

/** Parses an {@link EntryId}. Throws {@link MalformedError}. */
export function parseEntryId (id: string): CID {
  try {
    const cid = CID.parse(id)
    if (!isEntryCid(cid)) throw new Error('not a dag-cbor sha2-256 CIDv1')
    return cid
  } catch (err) {
    throw new MalformedError(`"entryId" is not a PeakDB entry id: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * Builds an entry (version 2, header `v: 2`). `makePayload` receives dagcbor(header) so it can
 * seal the payload against it. The entry is authenticated by a {@link signChain} signature on it
 * or on a later entry of the same author.
 *
 * @example
 * ```ts
 * const entry = createEntry(header, (aad) => seal(key, plaintext, aad))
 * const sig = signChain(entry.cid, signer)
 * ```
 */
export function createEntry (header: EntryHeader, makePayload: (headerBytes: Uint8Array) => Uint8Array): Entry {
  if (header.v !== ENTRY_VERSION) throw new MalformedError(`createEntry writes version ${ENTRY_VERSION} entries, not ${header.v}`)
  const headerBytes = encodeHeader(header)
  const payload = makePayload(headerBytes)
  const bytes = frameEntry(headerBytes, payload)
  if (bytes.length > MAX_ENTRY_BYTES) throw new TooLargeError(`entry of ${bytes.length} bytes is over ${MAX_ENTRY_BYTES}`)
  return { cid: cidOf(bytes), bytes, header, headerBytes, payload, sig: undefined }
}

/**
 * Builds a version 1 entry signed by itself, as releases before chain signatures wrote them: for
 * reading and testing logs those releases left.
 */
export function createLegacyEntry (header: EntryHeader, makePayload: (headerBytes: Uint8Array) => Uint8Array, signer: Signer): Entry {
  if (header.v !== LEGACY_ENTRY_VERSION) throw new MalformedError(`createLegacyEntry writes version ${LEGACY_ENTRY_VERSION} entries, not ${header.v}`)
  const headerBytes = encodeHeader(header)
  const payload = makePayload(headerBytes)
  const sig = signer.sign(signedMessageV1(headerBytes, payload))
  const bytes = frameEntry(headerBytes, payload, sig)
  if (bytes.length > MAX_ENTRY_BYTES) throw new TooLargeError(`entry of ${bytes.length} bytes is over ${MAX_ENTRY_BYTES}`)
  return { cid: cidOf(bytes), bytes, header, headerBytes, payload, sig }
}

/** The author's chain signature on an entry: it authenticates the entry and every earlier one of its chain. */
export function signChain (cid: CID, signer: Signer): Uint8Array {
  return signer.sign(chainMessage(cid))
}

function bad (message: string): never {
  throw new MalformedError(message)
}

/** True for the CIDs entries are addressed by: v1, dag-cbor, a 32-byte sha2-256 digest. */
function isEntryCid (cid: CID): boolean {
  return cid.version === 1 && cid.code === dagCbor.code && cid.multihash.code === SHA2_256 && cid.multihash.size === 32
}

function asCid (value: unknown, what: string): CID {
  const cid = CID.asCID(value)
  if (cid === null || !isEntryCid(cid)) bad(`"${what}" expected an entry CID`)
  return cid
}

/**
 * Decodes untrusted entry bytes and checks their shape (not the signature or links). When
 * `expected` is given, the bytes must hash to it.
 */
export function decodeEntry (bytes: Uint8Array, expected?: CID): Entry {
  if (bytes.length > MAX_ENTRY_BYTES) throw new TooLargeError(`entry of ${bytes.length} bytes is over ${MAX_ENTRY_BYTES}`)
  const cid = cidOf(bytes)
  if (expected !== undefined && Buffer.compare(cid.bytes, expected.bytes) !== 0) throw new HashMismatchError(`entry bytes hash to ${cid.toString()}, expected ${expected.toString()}`)
  const parts = splitEntry(bytes) ?? decodeWhole(bytes)
  const { h, p, s } = parts
  if (!isPlainObject(h)) bad('entry "h" expected a map')
  if (!(p instanceof Uint8Array)) bad('entry "p" expected bytes')
  // String(h.v) would throw on a map such as {toString: 0}
  if (h.v !== ENTRY_VERSION && h.v !== LEGACY_ENTRY_VERSION) bad(`entry version ${typeof h.v === 'number' ? h.v : typeof h.v} is not supported`)
  if (h.v === LEGACY_ENTRY_VERSION ? !(s instanceof Uint8Array) || s.length !== 64 : s !== undefined) {
    bad(h.v === LEGACY_ENTRY_VERSION ? 'entry "s" expected 64 bytes' : 'a version 2 entry carries no "s"')
  }
  if (typeof h.swarm !== 'string' || h.swarm.length === 0 || h.swarm.length > 128) bad('entry "swarm" expected a string')
  if (!isDeviceId(h.author)) bad('entry "author" expected a DeviceId')
  if (typeof h.seq !== 'number' || !Number.isSafeInteger(h.seq) || h.seq < 1) bad('entry "seq" expected an integer >= 1')
  const prev = h.prev === null ? null : asCid(h.prev, 'prev')
  if ((h.seq === 1) !== (prev === null)) bad('entry "prev" must be null exactly when seq is 1')
  if (!Array.isArray(h.deps) || h.deps.length > MAX_DEPS) bad(`entry "deps" expected at most ${MAX_DEPS} CIDs`)
  const deps = h.deps.map((d, i) => asCid(d, `deps[${i}]`))
  const clock = checkHlc(h.clock)
  if (typeof h.epoch !== 'number' || !Number.isInteger(h.epoch) || h.epoch < 0 || h.epoch > 0xffffffff) bad('entry "epoch" expected a u32')
  const header: EntryHeader = { v: h.v, swarm: h.swarm, author: h.author, seq: h.seq, prev, deps, clock, epoch: h.epoch }
  const sig = s as Uint8Array | undefined
  return { cid, bytes, header, headerBytes: parts.headerBytes ?? canonicalHeaderBytes(bytes, header, p, sig), payload: p, sig }
}

/**
 * The header bytes of an entry that missed the fast path, provided the entry is in canonical
 * form. The signature covers the header's canonical encoding, not the bytes as sent, so any
 * other encoding of a signed entry (keys in another order, an extra key, a length in more bytes
 * than needed) would verify under another CID: a peer could then make an honest author look as
 * if it had forked, or leave entries depending on the original CID waiting forever.
 */
function canonicalHeaderBytes (bytes: Uint8Array, header: EntryHeader, payload: Uint8Array, sig: Uint8Array | undefined): Uint8Array {
  const headerBytes = encodeHeader(header)
  if (Buffer.compare(frameEntry(headerBytes, payload, sig), bytes) !== 0) bad('entry is not in canonical DAG-CBOR form')
  return headerBytes
}

interface EntryParts { h: unknown, p: unknown, s: unknown, headerBytes?: Uint8Array }

/**
 * Fast path for the canonical layout every PeakDB writer produces (see {@link frameEntry}):
 * only the header goes through the DAG-CBOR decoder; payload and signature are views into the
 * bytes, and the header's own bytes are kept for signature checks instead of being re-encoded.
 * Returns undefined when the bytes have any other layout (then they are decoded whole).
 */
function splitEntry (bytes: Uint8Array): EntryParts | undefined {
  const signed = bytes[0] === 0xa3
  if (bytes.length < 16 || (!signed && bytes[0] !== 0xa2) || bytes[1] !== 0x61 || bytes[2] !== 0x68) return undefined
  let h: unknown
  let rest: Uint8Array
  try {
    [h, rest] = decodeFirstDagCbor(bytes.subarray(3), MAX_ENTRY_ITEMS)
  } catch (err) {
    if (err instanceof TooLargeError) throw err
    return undefined
  }
  const headerBytes = bytes.subarray(3, bytes.length - rest.length)
  if (rest.length < 3 || rest[0] !== 0x61 || rest[1] !== 0x70) return undefined
  const view = new DataView(rest.buffer, rest.byteOffset, rest.length)
  const first = rest[2] as number
  let len: number
  let at: number
  if (first >= 0x40 && first < 0x58) { len = first - 0x40; at = 3 }
  // a truncated length falls to the whole decode, which reports it as malformed
  else if (rest.length < 8) return undefined
  else if (first === 0x58) { len = rest[3] as number; at = 4 }
  else if (first === 0x59) { len = view.getUint16(3); at = 5 }
  else if (first === 0x5a) { len = view.getUint32(3); at = 7 }
  else return undefined
  // a length in more bytes than needed is another encoding of the same entry (see canonicalHeaderBytes)
  if ((at === 4 && len < 24) || (at === 5 && len < 0x100) || (at === 7 && len < 0x10000)) return undefined
  const tail = at + len
  if (!signed) return rest.length === tail ? { h, p: rest.subarray(at, tail), s: undefined, headerBytes } : undefined
  if (rest.length !== tail + 4 + 64 || rest[tail] !== 0x61 || rest[tail + 1] !== 0x73 || rest[tail + 2] !== 0x58 || rest[tail + 3] !== 0x40) return undefined
  return { h, p: rest.subarray(at, tail), s: rest.subarray(tail + 4), headerBytes }
}

function decodeWhole (bytes: Uint8Array): EntryParts {
  let value: unknown
  try {
    value = decodeDagCbor(bytes, MAX_ENTRY_ITEMS)
  } catch (err) {
    if (err instanceof TooLargeError) throw err
    bad(`entry is not valid DAG-CBOR: ${(err as Error).message}`)
  }
  if (!isPlainObject(value)) bad('entry expected a map')
  return { h: value.h, p: value.p, s: value.s }
}

/**
 * Checks the signature that covers `entry`: its own (version 1) or the author's chain signature
 * `chainSig` on it. Throws {@link InvalidSignatureError} when it does not verify or there is none.
 */
export function verifyEntrySignature (entry: Entry, chainSig?: Uint8Array): void {
  const key = publicKeyFromDeviceId(entry.header.author)
  const what = `entry ${entry.cid.toString()} (author ${entry.header.author}, seq ${entry.header.seq})`
  if (entry.sig !== undefined) {
    if (!verifySignature(key, signedMessageV1(entry.headerBytes, entry.payload), entry.sig)) throw new InvalidSignatureError(`${what} has a bad signature`)
    return
  }
  if (chainSig === undefined) throw new InvalidSignatureError(`${what} is not covered by a signature of its author`)
  if (!verifySignature(key, chainMessage(entry.cid), chainSig)) throw new InvalidSignatureError(`${what} has a bad chain signature`)
}

/** What the link checks need to know of the local log. */
export interface LogView {
  readonly swarm: string
  /** The author's latest contiguous entry, if any. */
  tip (author: DeviceId): { readonly seq: number, readonly cid: CID } | undefined
  /** True when the log holds this entry. */
  has (cid: CID): boolean
}

/**
 * Checks an entry's place in the log: right swarm, next in its author's chain (no gap, no
 * fork), every dep present. Returns 'duplicate' for an entry the log already holds.
 */
export function checkEntryLinks (entry: Entry, log: LogView): 'new' | 'duplicate' {
  const h = entry.header
  if (h.swarm !== log.swarm) throw new WrongSwarmError(`entry ${entry.cid.toString()} belongs to swarm ${h.swarm}, not ${log.swarm}`)
  const tip = log.tip(h.author)
  const next = (tip?.seq ?? 0) + 1
  if (h.seq < next) {
    if (log.has(entry.cid)) return 'duplicate'
    throw new ForkError(`author ${h.author} already has another entry at seq ${h.seq}`)
  }
  if (h.seq > next) throw new SeqGapError(h.author, next, h.seq)
  if (tip !== undefined && (h.prev === null || !h.prev.equals(tip.cid))) {
    throw new ForkError(`entry ${entry.cid.toString()} of ${h.author} does not link to the author's previous entry`)
  }
  for (const dep of h.deps) {
    if (!log.has(dep)) throw new MissingDependencyError(`entry ${entry.cid.toString()} depends on ${dep.toString()}, which this log does not hold`)
  }
  return 'new'
}
