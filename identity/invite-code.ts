/**
 * Pairing invites: what a member device hands to a new one (as text or a QR code) so that it
 * can join the swarm without the recovery phrase. The code carries the inviter's public key
 * (hence its PeerId), its addresses, a one-time secret and an expiry; it ends with a Luhn mod 32
 * check character, so a mistyped or truncated code is caught before anything is dialed.
 *
 * Text form: `peak1` + base32(DAG-CBOR [version, inviterKey, addrs, secret, expires]) + check.
 *
 * The secret never travels: the new device proves it knows it with an HMAC bound to both
 * devices' keys and fresh nonces (see {@link pairingProof}), over the Noise channel that already
 * authenticates both ends.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import * as dagCbor from '@ipld/dag-cbor'
import { base32 } from 'multiformats/bases/base32'
import { deviceIdFromPublicKey, type DeviceId } from './device-id.js'
import { InvalidInviteError } from './errors.js'

/** A decoded invite. */
export interface Invite {
  readonly inviter: DeviceId
  readonly inviterKey: Uint8Array
  /** The inviter's addresses, binary multiaddrs (without /p2p). */
  readonly addrs: readonly Uint8Array[]
  readonly secret: Uint8Array
  /** Expiry, Unix seconds. */
  readonly expires: number
}

const PREFIX = 'peak1'
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
const SECRET_BYTES = 16
const MAX_ADDRS = 8

/** Luhn mod 32 check character of a base32 string. */
function checkChar (body: string): string {
  let factor = 2
  let sum = 0
  for (let i = body.length - 1; i >= 0; i--) {
    const cp = ALPHABET.indexOf(body[i] as string)
    let addend = factor * cp
    factor = factor === 2 ? 1 : 2
    addend = Math.floor(addend / 32) + (addend % 32)
    sum += addend
  }
  return ALPHABET[(32 - (sum % 32)) % 32] as string
}

/** Encodes an invite as text. */
export function encodeInvite (invite: Omit<Invite, 'inviter'>): string {
  const body = base32.baseEncode(dagCbor.encode([1, invite.inviterKey, [...invite.addrs.slice(0, MAX_ADDRS)], invite.secret, invite.expires]))
  return PREFIX + body + checkChar(body)
}

function fail (message: string): never {
  throw new InvalidInviteError(message)
}

/** Decodes invite text (case, spaces and dashes are ignored). Throws {@link InvalidInviteError}. */
export function decodeInvite (text: string): Invite {
  if (typeof text !== 'string') fail('invite code expected a string')
  const clean = text.toLowerCase().replace(/[\s-]/g, '')
  if (!clean.startsWith(PREFIX)) fail(`invite code must start with "${PREFIX}"`)
  const rest = clean.slice(PREFIX.length)
  if (rest.length < 20 || rest.length > 2000 || ![...rest].every(c => ALPHABET.includes(c))) fail('invite code has characters outside its alphabet or a wrong length')
  const body = rest.slice(0, -1)
  if (checkChar(body) !== rest.slice(-1)) fail('invite code check digit does not match: a character is wrong or missing')
  let value: unknown
  try {
    value = dagCbor.decode(base32.baseDecode(body))
  } catch {
    fail('invite code does not decode')
  }
  if (!Array.isArray(value) || value.length !== 5 || value[0] !== 1) fail('invite code has an unknown version or shape')
  const [, key, addrs, secret, expires] = value as [number, unknown, unknown, unknown, unknown]
  if (!(key instanceof Uint8Array) || key.length !== 32) fail('invite code: bad inviter key')
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS || !addrs.every(a => a instanceof Uint8Array && a.length > 0 && a.length < 256)) fail('invite code: bad addresses')
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_BYTES) fail('invite code: bad secret')
  if (typeof expires !== 'number' || !Number.isSafeInteger(expires) || expires <= 0) fail('invite code: bad expiry')
  let inviter: DeviceId
  try {
    inviter = deviceIdFromPublicKey(key)
  } catch {
    fail('invite code: bad inviter key')
  }
  return { inviter, inviterKey: key, addrs: addrs as Uint8Array[], secret, expires }
}

/** The public id of an invite (lets the inviter find it without the secret being sent). */
export function inviteId (secret: Uint8Array): Uint8Array {
  return createHash('sha256').update('peakdb/invite-id/v1\0').update(secret).digest().subarray(0, 8)
}

/**
 * Proof of knowing an invite's secret: HMAC-SHA256 keyed by the secret over the role, both
 * devices' public keys and both nonces. Bound to the two authenticated ends of the channel, it
 * is useless anywhere else and reveals nothing about the secret.
 */
export function pairingProof (secret: Uint8Array, role: 'joiner' | 'inviter', inviterKey: Uint8Array, joinerKey: Uint8Array, inviterNonce: Uint8Array, joinerNonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret)
    .update(`peakdb/pair/v1/${role}\0`)
    .update(inviterKey).update(joinerKey).update(inviterNonce).update(joinerNonce)
    .digest())
}

/** A fresh invite secret (128 bits). */
export function inviteSecret (): Uint8Array {
  return new Uint8Array(randomBytes(SECRET_BYTES))
}
