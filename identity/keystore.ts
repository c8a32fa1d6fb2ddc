/**
 * The keystore file of a data dir: the device's secret key (and, on devices created from the
 * recovery phrase, the user root signing key), the device certificate and the swarm's public
 * identity. Written atomically with mode 0600. The secrets can be sealed under a passphrase
 * (scrypt N=2^17, r=8, p=1 from @noble/hashes, then XChaCha20-Poly1305). A file that cannot be
 * read as a keystore is reported (naming the file), never replaced.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, unlinkSync, existsSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { scrypt } from '@noble/hashes/scrypt.js'
import { KeystoreCorruptError, KeystoreNotFoundError, PassphraseRequiredError, WrongPassphraseError, DecryptionError } from './errors.js'
import { decodeCertificate, encodeCertificate, type DeviceCertificate } from './certificate.js'
import { swarmIdFromRootKey, type SwarmId } from './user-root.js'
import { deviceIdFromPublicKey, isDeviceId } from './device-id.js'
import { publicKeyOf } from './ed25519.js'
import { open, seal } from './seal.js'
import type { RetiredDevice } from './succession.js'

/** What a keystore holds. */
export interface KeystoreData {
  readonly swarmId: SwarmId
  readonly rootPublicKey: Uint8Array
  readonly recoveryPublicKey: Uint8Array
  readonly deviceSecretKey: Uint8Array
  /** The user root signing key, kept on devices created from the recovery phrase. */
  readonly rootSecretKey?: Uint8Array
  readonly certificate: DeviceCertificate
  /** Certificates of the devices that issued this one, up to a root-issued one (empty when root-issued). */
  readonly chain: readonly DeviceCertificate[]
  readonly createdAt: string
  /** How the device came to be: created with a new phrase, restored from one, or paired. */
  readonly origin?: 'init' | 'recover' | 'join'
  /** DeviceIds this device used before its history was lost (see `successorKeystore`). */
  readonly retired?: readonly RetiredDevice[]
}

const FORMAT = 'peakdb-keystore'
const VERSION = 2
/** scrypt cost for passphrase-protected keystores (OWASP's recommendation for scrypt). */
export const KEYSTORE_SCRYPT = { N: 2 ** 17, r: 8, p: 1 } as const
const SCRYPT_MAXMEM = 256 * 1024 * 1024
/** Most scrypt work (N·r·p) a keystore may ask for: 4× what this version writes. */
const SCRYPT_MAX_WORK = 4 * KEYSTORE_SCRYPT.N * KEYSTORE_SCRYPT.r * KEYSTORE_SCRYPT.p

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

function passphraseKey (passphrase: string, salt: Uint8Array, params: { N: number, r: number, p: number }): Uint8Array {
  return scrypt(passphrase.normalize('NFKC'), salt, { ...params, dkLen: 32, maxmem: SCRYPT_MAXMEM })
}

function aadOf (swarmId: string): Uint8Array {
  return new TextEncoder().encode(`peakdb/keystore/v2\0${swarmId}`)
}

/**
 * Writes `data` to `path` atomically (temp file, fsync, rename), readable by the owner only.
 * With a passphrase, the secret keys are sealed under it.
 */
export function writeKeystore (path: string, data: KeystoreData, options: { passphrase?: string } = {}): void {
  const secrets: Record<string, string> = { deviceSecretKey: b64(data.deviceSecretKey) }
  if (data.rootSecretKey !== undefined) secrets.rootSecretKey = b64(data.rootSecretKey)
  let stored: Record<string, unknown> = secrets
  if (options.passphrase !== undefined) {
    const salt = randomBytes(16)
    const key = passphraseKey(options.passphrase, salt, KEYSTORE_SCRYPT)
    const sealed = seal(key, new TextEncoder().encode(JSON.stringify(secrets)), aadOf(data.swarmId))
    key.fill(0)
    stored = { kdf: 'scrypt', ...KEYSTORE_SCRYPT, salt: b64(salt), sealed: b64(sealed) }
  }
  const doc = {
    format: FORMAT,
    version: VERSION,
    swarmId: data.swarmId,
    rootPublicKey: b64(data.rootPublicKey),
    recoveryPublicKey: b64(data.recoveryPublicKey),
    certificate: b64(encodeCertificate(data.certificate)),
    chain: data.chain.map(c => b64(encodeCertificate(c))),
    createdAt: data.createdAt,
    origin: data.origin ?? 'init',
    ...(data.retired !== undefined && data.retired.length > 0 ? { retired: data.retired } : {}),
    secrets: stored
  }
  writeFileAtomic(path, JSON.stringify(doc, null, 2) + '\n', 0o600)
}

/** Writes a file atomically with the given mode: a reader sees the old or the new file, never half. */
export function writeFileAtomic (path: string, content: string | Uint8Array, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', mode)
  try {
    const bytes = typeof content === 'string' ? Buffer.from(content) : content
    for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  try {
    renameSync(tmp, path)
  } catch (err) {
    if (existsSync(tmp)) unlinkSync(tmp)
    throw err
  }
  try {
    const dfd = openSync(dirname(path), 'r')
    try { fsyncSync(dfd) } finally { closeSync(dfd) }
  } catch {
    // some file systems do not allow fsync on directories; the rename is still atomic
  }
}

function bytesOf (value: unknown, name: string, length: number | undefined, path: string): Uint8Array {
  if (typeof value !== 'string') throw new KeystoreCorruptError(path, `"${name}" is missing`)
  const bytes = new Uint8Array(Buffer.from(value, 'base64'))
  if (length !== undefined && bytes.length !== length) throw new KeystoreCorruptError(path, `"${name}" expected ${length} bytes, got ${bytes.length}`)
  return bytes
}

function parseFile (path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new KeystoreNotFoundError(path)
    throw new KeystoreCorruptError(path, (err as Error).message)
  }
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
    return parsed as Record<string, unknown>
  } catch {
    throw new KeystoreCorruptError(path, 'not valid JSON (truncated or edited?)')
  }
}

/** True when the keystore's secrets are sealed under a passphrase. */
export function keystoreIsProtected (path: string): boolean {
  const doc = parseFile(path)
  const secrets = doc.secrets as Record<string, unknown> | undefined
  return secrets?.kdf === 'scrypt'
}

function openSecrets (doc: Record<string, unknown>, swarmId: string, path: string, passphrase: string | undefined): Record<string, unknown> {
  if (doc.version === 1) return doc // version 1 kept the device key at the top level
  const secrets = doc.secrets
  if (secrets === null || typeof secrets !== 'object' || Array.isArray(secrets)) throw new KeystoreCorruptError(path, '"secrets" is missing')
  const s = secrets as Record<string, unknown>
  if (s.kdf === undefined) return s
  if (s.kdf !== 'scrypt') throw new KeystoreCorruptError(path, `unknown key derivation ${JSON.stringify(s.kdf)}`)
  if (passphrase === undefined) throw new PassphraseRequiredError(`keystore ${path} is protected by a passphrase (set PEAKDB_PASSPHRASE or pass it)`)
  const { N, r, p } = s
  if (!isCount(N) || !isCount(r) || !isCount(p) || !scryptCostOk(N, r, p)) throw new KeystoreCorruptError(path, 'scrypt parameters out of range')
  const key = passphraseKey(passphrase, bytesOf(s.salt, 'salt', 16, path), { N, r, p })
  let opened: unknown
  try {
    opened = JSON.parse(new TextDecoder().decode(open(key, bytesOf(s.sealed, 'sealed', undefined, path), aadOf(swarmId))))
  } catch (err) {
    if (err instanceof DecryptionError) throw new WrongPassphraseError(`the passphrase does not open keystore ${path}`)
    throw new KeystoreCorruptError(path, 'sealed secrets do not decode')
  } finally {
    key.fill(0)
  }
  if (opened === null || typeof opened !== 'object' || Array.isArray(opened)) throw new KeystoreCorruptError(path, 'sealed secrets are not an object')
  return opened as Record<string, unknown>
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n > 0

/**
 * True when scrypt accepts the parameters (N a power of 2, memory within the cap) and the work
 * stays bounded (N·r·p within {@link SCRYPT_MAX_WORK}; r and p small, as each costs key
 * stretching of its own): otherwise scrypt throws a plain Error, or runs for minutes before the
 * passphrase is even checked.
 */
function scryptCostOk (N: number, r: number, p: number): boolean {
  return r <= 32 && p <= 16 && N * r * p <= SCRYPT_MAX_WORK && N >= 2 && (N & (N - 1)) === 0 && 128 * r * (N + p + 1) <= SCRYPT_MAXMEM
}

/**
 * Reads and validates a keystore. Throws {@link KeystoreNotFoundError}, {@link KeystoreCorruptError},
 * {@link PassphraseRequiredError} or {@link WrongPassphraseError}.
 */
export function readKeystore (path: string, options: { passphrase?: string } = {}): KeystoreData {
  const doc = parseFile(path)
  if (doc.format !== FORMAT) throw new KeystoreCorruptError(path, `"format" expected "${FORMAT}"`)
  if (doc.version !== VERSION && doc.version !== 1) throw new KeystoreCorruptError(path, `unsupported version ${typeof doc.version === 'number' ? doc.version : typeof doc.version}`)
  const rootPublicKey = bytesOf(doc.rootPublicKey, 'rootPublicKey', 32, path)
  const swarmId = swarmIdFromRootKey(rootPublicKey)
  if (doc.swarmId !== swarmId) throw new KeystoreCorruptError(path, '"swarmId" does not match "rootPublicKey"')
  const recoveryPublicKey = bytesOf(doc.recoveryPublicKey, 'recoveryPublicKey', 32, path)
  const secrets = openSecrets(doc, swarmId, path, options.passphrase)
  const deviceSecretKey = bytesOf(secrets.deviceSecretKey, 'deviceSecretKey', 32, path)
  const rootSecretKey = secrets.rootSecretKey === undefined ? undefined : bytesOf(secrets.rootSecretKey, 'rootSecretKey', 32, path)
  if (rootSecretKey !== undefined && Buffer.compare(publicKeyOf(rootSecretKey), rootPublicKey) !== 0) {
    throw new KeystoreCorruptError(path, '"rootSecretKey" does not match "rootPublicKey"')
  }
  let certificate: DeviceCertificate
  try {
    certificate = decodeCertificate(bytesOf(doc.certificate, 'certificate', undefined, path), swarmId, rootPublicKey)
  } catch (err) {
    if (err instanceof KeystoreCorruptError) throw err
    throw new KeystoreCorruptError(path, `"certificate" is invalid: ${(err as Error).message}`)
  }
  if (deviceIdFromPublicKey(publicKeyOf(deviceSecretKey)) !== certificate.device) {
    throw new KeystoreCorruptError(path, '"certificate" is for another device key')
  }
  const chainText = doc.chain ?? []
  if (!Array.isArray(chainText) || !chainText.every(c => typeof c === 'string')) throw new KeystoreCorruptError(path, '"chain" expected a list of certificates')
  let chain: DeviceCertificate[]
  try {
    chain = chainText.map(c => decodeCertificate(new Uint8Array(Buffer.from(c, 'base64')), swarmId, rootPublicKey))
  } catch (err) {
    throw new KeystoreCorruptError(path, `"chain" is invalid: ${(err as Error).message}`)
  }
  const createdAt = typeof doc.createdAt === 'string' ? doc.createdAt : ''
  const origin = doc.origin === 'recover' || doc.origin === 'join' ? doc.origin : 'init'
  const retired = retiredOf(doc.retired, path)
  const base = { swarmId, rootPublicKey, recoveryPublicKey, deviceSecretKey, certificate, chain, createdAt, origin, ...(retired.length > 0 ? { retired } : {}) } as const
  return rootSecretKey === undefined ? base : { ...base, rootSecretKey }
}

function retiredOf (value: unknown, path: string): RetiredDevice[] {
  if (value === undefined) return []
  const ok = Array.isArray(value) && value.length <= 256 && value.every(r => r !== null && typeof r === 'object' &&
    isDeviceId((r as Record<string, unknown>).device) && typeof (r as Record<string, unknown>).at === 'string' && (r as Record<string, unknown>).reason === 'database-lost')
  if (!ok) throw new KeystoreCorruptError(path, '"retired" expected a list of { device, at, reason }')
  return (value as RetiredDevice[]).map(r => ({ device: r.device, at: r.at, reason: r.reason }))
}
