/**
 * The keystore file of a data dir: the device's secret key, its certificate and the swarm's
 * public identity. Written atomically with mode 0600; a file that cannot be read as a keystore is
 * reported (naming the file), never replaced.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, unlinkSync, existsSync } from 'node:fs'
import { dirname } from 'node:path'
import { KeystoreCorruptError, KeystoreNotFoundError } from './errors.js'
import { decodeCertificate, encodeCertificate, type DeviceCertificate } from './certificate.js'
import { swarmIdFromRootKey, type SwarmId } from './user-root.js'
import { deviceIdFromPublicKey } from './device-id.js'
import { publicKeyOf } from './ed25519.js'

/** What a keystore holds. */
export interface KeystoreData {
  readonly swarmId: SwarmId
  readonly rootPublicKey: Uint8Array
  readonly recoveryPublicKey: Uint8Array
  readonly deviceSecretKey: Uint8Array
  readonly certificate: DeviceCertificate
  /** Certificates of the devices that issued this one, up to a root-issued one (empty when root-issued). */
  readonly chain: readonly DeviceCertificate[]
  readonly createdAt: string
}

const FORMAT = 'peakdb-keystore'
const VERSION = 1

function b64 (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

/** Writes `data` to `path` atomically (temp file, fsync, rename), readable by the owner only. */
export function writeKeystore (path: string, data: KeystoreData): void {
  const doc = {
    format: FORMAT,
    version: VERSION,
    swarmId: data.swarmId,
    rootPublicKey: b64(data.rootPublicKey),
    recoveryPublicKey: b64(data.recoveryPublicKey),
    deviceSecretKey: b64(data.deviceSecretKey),
    certificate: b64(encodeCertificate(data.certificate)),
    chain: data.chain.map(c => b64(encodeCertificate(c))),
    createdAt: data.createdAt
  }
  writeFileAtomic(path, JSON.stringify(doc, null, 2) + '\n', 0o600)
}

/** Writes a file atomically with the given mode: a reader sees the old or the new file, never half. */
export function writeFileAtomic (path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`
  const fd = openSync(tmp, 'w', mode)
  try {
    writeSync(fd, content)
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

function bytesField (doc: Record<string, unknown>, name: string, length: number | undefined, path: string): Uint8Array {
  const v = doc[name]
  if (typeof v !== 'string') throw new KeystoreCorruptError(path, `"${name}" is missing`)
  const bytes = new Uint8Array(Buffer.from(v, 'base64'))
  if (length !== undefined && bytes.length !== length) throw new KeystoreCorruptError(path, `"${name}" expected ${length} bytes, got ${bytes.length}`)
  return bytes
}

/** Reads and validates a keystore. Throws {@link KeystoreNotFoundError} or {@link KeystoreCorruptError}. */
export function readKeystore (path: string): KeystoreData {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new KeystoreNotFoundError(path)
    throw new KeystoreCorruptError(path, (err as Error).message)
  }
  let doc: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
    doc = parsed as Record<string, unknown>
  } catch {
    throw new KeystoreCorruptError(path, 'not valid JSON (truncated or edited?)')
  }
  if (doc.format !== FORMAT) throw new KeystoreCorruptError(path, `"format" expected "${FORMAT}"`)
  if (doc.version !== VERSION) throw new KeystoreCorruptError(path, `unsupported version ${String(doc.version)}`)
  const rootPublicKey = bytesField(doc, 'rootPublicKey', 32, path)
  const swarmId = swarmIdFromRootKey(rootPublicKey)
  if (doc.swarmId !== swarmId) throw new KeystoreCorruptError(path, '"swarmId" does not match "rootPublicKey"')
  const recoveryPublicKey = bytesField(doc, 'recoveryPublicKey', 32, path)
  const deviceSecretKey = bytesField(doc, 'deviceSecretKey', 32, path)
  let certificate: DeviceCertificate
  try {
    certificate = decodeCertificate(bytesField(doc, 'certificate', undefined, path), swarmId, rootPublicKey)
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
  return { swarmId, rootPublicKey, recoveryPublicKey, deviceSecretKey, certificate, chain, createdAt }
}
