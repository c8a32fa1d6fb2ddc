/**
 * Authenticated encryption of payloads: XChaCha20-Poly1305 with a random 24-byte nonce.
 * Wire form: nonce (24) || ciphertext || tag (16).
 *
 * Fast path: HChaCha20 (from @noble/ciphers) derives the subkey, then Node's native
 * chacha20-poly1305 encrypts with nonce 0x00000000 || nonce[16..24]. That is XChaCha20-Poly1305
 * by definition (draft-irtf-cfrg-xchacha §2.3) and is cross-tested byte-for-byte against
 * @noble/ciphers' xchacha20poly1305, the reference, which is used on big-endian hosts.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { endianness } from 'node:os'
import { hchacha, xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { DecryptionError, InvalidKeyError } from './errors.js'

/** Sealed bytes: nonce || ciphertext || tag. */
export type Ciphertext = Uint8Array & { readonly __brand: 'Ciphertext' }

export const KEY_BYTES = 32
export const NONCE_BYTES = 24
export const TAG_BYTES = 16
/** Bytes a sealed payload adds to its plaintext. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES

// "expand 32-byte k" as little-endian 32-bit words.
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574])
const NATIVE = endianness() === 'LE'

function checkKey (key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new InvalidKeyError(`"key" expected ${KEY_BYTES} bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`)
  }
}

/** HChaCha20(key, nonce[0..16]) -> 32-byte subkey (little-endian hosts). */
function subkey (key: Uint8Array, nonce: Uint8Array): Buffer {
  const k = new Uint32Array(8)
  new Uint8Array(k.buffer).set(key)
  const n = new Uint32Array(4)
  new Uint8Array(n.buffer).set(nonce.subarray(0, 16))
  const out = new Uint32Array(8)
  hchacha(SIGMA, k, n, out)
  k.fill(0)
  return Buffer.from(out.buffer)
}

function innerNonce (nonce: Uint8Array): Buffer {
  const n = Buffer.alloc(12)
  n.set(nonce.subarray(16, 24), 4)
  return n
}

/**
 * Encrypts `plaintext` under a 32-byte key, binding `aad` (authenticated, not encrypted).
 *
 * @example
 * ```ts
 * const sealed = seal(key, payload, headerBytes)
 * const payload2 = open(key, sealed, headerBytes)
 * ```
 */
export function seal (key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array = randomBytes(NONCE_BYTES)): Ciphertext {
  checkKey(key)
  if (nonce.length !== NONCE_BYTES) throw new InvalidKeyError(`"nonce" expected ${NONCE_BYTES} bytes, got ${nonce.length}`)
  if (!NATIVE) {
    const out = new Uint8Array(NONCE_BYTES + plaintext.length + TAG_BYTES)
    out.set(nonce)
    out.set(xchacha20poly1305(key, nonce, aad).encrypt(plaintext), NONCE_BYTES)
    return out as Ciphertext
  }
  const k = subkey(key, nonce)
  try {
    return nativeSeal(k, nonce, plaintext, aad)
  } finally {
    k.fill(0)
  }
}

// A sealer keeps one nonce prefix for up to 2^32 messages: remember the last subkey per key.
const lastSubkey = new WeakMap<Uint8Array, { prefix: Buffer, subkey: Buffer }>()

function cachedSubkey (key: Uint8Array, nonce: Uint8Array): Buffer {
  const prefix = nonce.subarray(0, 16)
  const hit = lastSubkey.get(key)
  if (hit !== undefined && hit.prefix.equals(prefix)) return hit.subkey
  const subkeyBytes = subkey(key, nonce)
  lastSubkey.set(key, { prefix: Buffer.from(prefix), subkey: subkeyBytes })
  return subkeyBytes
}

/** Decrypts and authenticates a sealed payload. Throws {@link DecryptionError} on any mismatch. */
export function open (key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkKey(key)
  if (sealed.length < SEAL_OVERHEAD) {
    throw new DecryptionError(`sealed payload expected at least ${SEAL_OVERHEAD} bytes, got ${sealed.length}`)
  }
  const nonce = sealed.subarray(0, NONCE_BYTES)
  if (!NATIVE) {
    try {
      return xchacha20poly1305(key, nonce, aad).decrypt(sealed.subarray(NONCE_BYTES))
    } catch {
      throw new DecryptionError('payload failed authentication (wrong key, header or tampered bytes)')
    }
  }
  const k = cachedSubkey(key, nonce)
  const body = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)
  const decipher = createDecipheriv('chacha20-poly1305', k, innerNonce(nonce), { authTagLength: TAG_BYTES })
  decipher.setAAD(aad, { plaintextLength: body.length })
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
  const plain = decipher.update(body)
  try {
    decipher.final()
  } catch {
    throw new DecryptionError('payload failed authentication (wrong key, header or tampered bytes)')
  }
  return new Uint8Array(plain.buffer, plain.byteOffset, plain.length)
}

function nativeSeal (subkeyBytes: Buffer, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Ciphertext {
  const cipher = createCipheriv('chacha20-poly1305', subkeyBytes, innerNonce(nonce), { authTagLength: TAG_BYTES })
  cipher.setAAD(aad, { plaintextLength: plaintext.length })
  const body = cipher.update(plaintext)
  cipher.final()
  const out = new Uint8Array(NONCE_BYTES + plaintext.length + TAG_BYTES)
  out.set(nonce)
  out.set(body, NONCE_BYTES)
  out.set(cipher.getAuthTag(), NONCE_BYTES + body.length)
  return out as Ciphertext
}

/**
 * Seals many payloads under one key, fast: nonces are a random 16-byte prefix (drawn once per
 * 2^32 messages) followed by an 8-byte counter, so the HChaCha20 subkey is derived once per
 * prefix instead of once per message. Nonces never repeat within a sealer, and two sealers
 * collide only if their random 128-bit prefixes do. Output is plain XChaCha20-Poly1305: any
 * implementation opens it.
 */
export class PayloadSealer {
  private prefix = new Uint8Array(16)
  private sub: Buffer | undefined
  private counter = 0
  private readonly nonce = new Uint8Array(NONCE_BYTES)

  constructor (private readonly key: Uint8Array) {
    checkKey(key)
  }

  private rotate (): void {
    this.prefix = new Uint8Array(randomBytes(16))
    this.sub = NATIVE ? subkey(this.key, this.prefix) : undefined
    this.counter = 0
  }

  /** Seals one payload (see {@link seal}). */
  seal (plaintext: Uint8Array, aad: Uint8Array): Ciphertext {
    if (this.counter === 0 || this.counter >= 0xffffffff) this.rotate()
    const n = this.counter++
    const nonce = this.nonce
    nonce.set(this.prefix)
    new DataView(nonce.buffer).setUint32(20, n, false)
    if (this.sub === undefined) return sealReference(this.key, plaintext, aad, nonce)
    return nativeSeal(this.sub, nonce, plaintext, aad)
  }
}

/** The pure-JS reference (@noble/ciphers), exposed for cross-checks and benchmarks. */
export function sealReference (key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, nonce: Uint8Array): Ciphertext {
  const out = new Uint8Array(NONCE_BYTES + plaintext.length + TAG_BYTES)
  out.set(nonce)
  out.set(xchacha20poly1305(key, nonce, aad).encrypt(plaintext), NONCE_BYTES)
  return out as Ciphertext
}
