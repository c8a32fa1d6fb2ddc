/**
 * Wire messages of PeakDB's protocols, DAG-CBOR encoded, each validated against a zod schema
 * with caps on every array and byte string. Anything that does not decode and validate is a
 * {@link ProtocolError}; callers drop the peer.
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { z } from 'zod'
import { decodeDagCbor, MAX_ENTRY_BYTES, MAX_VECTOR_AUTHORS } from '../crdt/index.js'

/** A peer sent bytes that are not a valid message of the protocol in use. */
export class ProtocolError extends Error {
  static readonly code = 'ERR_PROTOCOL'
  override readonly name = 'ProtocolError'
  readonly code = ProtocolError.code
}

/** Largest frame of the sync protocol: one maximal entry plus framing. */
export const MAX_SYNC_FRAME = MAX_ENTRY_BYTES + 64 * 1024
/** Largest frame of the small request/response protocols (hello, acks). */
export const MAX_SMALL_FRAME = 256 * 1024
/** Largest gossip message. */
export const MAX_GOSSIP_MESSAGE = 1024 * 1024
/** Entries at most this large travel inline in gossip. */
export const MAX_INLINE_ENTRY = 64 * 1024
/** Most certificates in a chain. */
export const MAX_CHAIN = 16
/**
 * Most DAG-CBOR items in a message: a full version vector (three per author) or sync batch
 * (one per entry) with room to spare; beyond it a frame of tiny items costs far more to decode
 * than its size suggests.
 */
export const MAX_MESSAGE_ITEMS = 1 << 16

const bytes = (max: number) => z.instanceof(Uint8Array).refine(b => b.length <= max, `over ${max} bytes`)
const exactBytes = (n: number) => z.instanceof(Uint8Array).refine(b => b.length === n, `expected ${n} bytes`)
const deviceId = z.string().min(40).max(64)
const vector = z.array(z.tuple([deviceId, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)])).max(MAX_VECTOR_AUTHORS)

const keyBoxes = z.array(z.object({ id: z.number().int().min(1).max(0xffffffff), box: bytes(256) }).strict()).max(1024)

export const helloSchema = z.object({
  t: z.literal('hello'),
  v: z.literal(1),
  swarm: z.string().min(1).max(128),
  chain: z.array(bytes(4096)).min(1).max(MAX_CHAIN),
  /** Epoch keys sealed to the peer (only sent to a peer already verified). */
  keys: keyBoxes.optional()
}).strict()

/**
 * The answer to a revoked device's hello: its revocation (DAG-CBOR, signed by the root key or a
 * member device) and the certificate chain of the issuing device (empty when the root key
 * signed), so that it can check the revocation itself before it believes it.
 */
export const helloRevokedSchema = z.object({
  t: z.literal('revoked'),
  rev: bytes(1024),
  chain: z.array(bytes(4096)).max(MAX_CHAIN)
}).strict()

export const keysSchema = z.object({
  t: z.literal('keys'),
  keys: keyBoxes
}).strict()

export const errorSchema = z.object({
  t: z.literal('error'),
  code: z.string().max(64),
  message: z.string().max(1024)
}).strict()

export const syncRequestSchema = z.object({
  t: z.literal('req'),
  have: vector
}).strict()

/** Chain signatures next to the entries they cover: [index in the entries, signature]. */
const chainSigs = z.array(z.tuple([z.number().int().min(0).max(9_999), bytes(64).refine(b => b.length === 64, 'expected 64 bytes')])).max(10_000)

export const syncBatchSchema = z.object({
  t: z.literal('batch'),
  entries: z.array(bytes(MAX_ENTRY_BYTES)).min(1).max(10_000),
  sigs: chainSigs,
  remaining: z.number().int().min(0)
}).strict()

export const syncAckSchema = z.object({
  t: z.literal('ack'),
  applied: z.number().int().min(0)
}).strict()

export const syncEndSchema = z.object({
  t: z.literal('end'),
  have: vector
}).strict()

export const gossipSchema = z.discriminatedUnion('t', [
  // one run of the publisher's entries, `s` its chain signature on the last of them
  z.object({ t: z.literal('entries'), e: z.array(bytes(MAX_INLINE_ENTRY)).min(1).max(1024), s: bytes(64).refine(b => b.length === 64, 'expected 64 bytes') }).strict(),
  z.object({ t: z.literal('heads'), h: vector }).strict()
])

export type GossipMessage = z.infer<typeof gossipSchema>

/** Encodes a message. */
export function encodeMessage (message: object): Uint8Array {
  return dagCbor.encode(message)
}

/** Decodes and validates a message against one or more schemas (first match wins). */
export function decodeMessage<T> (bytes: Uint8Array, schema: z.ZodType<T>, what: string): T {
  let value: unknown
  try {
    value = decodeDagCbor(bytes, MAX_MESSAGE_ITEMS)
  } catch (err) {
    throw new ProtocolError(`${what}: not DAG-CBOR (${(err as Error).message})`)
  }
  let parsed: ReturnType<typeof schema.safeParse>
  try {
    parsed = schema.safeParse(value)
  } catch (err) {
    // zod runs its length checks on any value with a `length` property, and they throw on a map
    // such as {length: {toString: 0}} instead of reporting an issue
    throw new ProtocolError(`${what}: does not validate (${(err as Error).message})`, { cause: err })
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ProtocolError(`${what}: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || 'message'}: ${issue.message}`}`)
  }
  return parsed.data
}

/** Reads one length-prefixed message and decodes it (see {@link decodeMessage}). */
export async function readMessage<T> (lp: LengthPrefixedStream, schema: z.ZodType<T>, what: string, signal: AbortSignal): Promise<T> {
  return decodeMessage((await lp.read({ signal })).subarray(), schema, what)
}

/**
 * Lets a stream buffer a frame of `bytes`: libp2p's default read buffer (4 MiB) would reset
 * the stream on a larger one (a big putMany entry, a large search answer).
 */
export function allowLargeFrames (stream: Stream, bytes: number): void {
  (stream as unknown as { maxReadBufferLength: number }).maxReadBufferLength = 2 * bytes
}

/** Hole punching: where the sender will dial from (its public IP, the local port it predicts its NAT keeps). */
export const punchSchema = z.object({
  t: z.literal('punch'),
  ip: z.string().max(64),
  port: z.number().int().min(1024).max(65535)
}).strict()

/** Hole punching: dial now. */
export const punchSyncSchema = z.object({ t: z.literal('sync') }).strict()

export const pairJoinSchema = z.object({
  t: z.literal('join'),
  invite: exactBytes(8),
  name: z.string().min(1).max(64),
  nonce: exactBytes(16)
}).strict()

export const pairChallengeSchema = z.object({
  t: z.literal('challenge'),
  nonce: exactBytes(16)
}).strict()

export const pairProofSchema = z.object({
  t: z.literal('proof'),
  mac: exactBytes(32)
}).strict()

export const pairWelcomeSchema = z.object({
  t: z.literal('welcome'),
  mac: exactBytes(32),
  swarm: z.string().min(1).max(128),
  rootPublicKey: exactBytes(32),
  recoveryPublicKey: exactBytes(32),
  certificate: bytes(4096),
  chain: z.array(bytes(4096)).max(MAX_CHAIN),
  keys: keyBoxes,
  addrs: z.array(z.string().max(1024)).max(16),
  name: z.string().max(64)
}).strict()

/** The joiner stored its new identity (pair 2.0.0): the inviter may now record its certificate. */
export const pairStoredSchema = z.object({
  t: z.literal('stored')
}).strict()

/** The inviter recorded the joiner's certificate (pair 2.0.0): the joiner is a member. */
export const pairDoneSchema = z.object({
  t: z.literal('done')
}).strict()
