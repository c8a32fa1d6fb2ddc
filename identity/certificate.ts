/**
 * Signed membership records: a device certificate says "device D belongs to swarm S", signed by
 * the user root key or by a device that is itself a member; a revocation says "device D no
 * longer belongs", signed the same way. Records are DAG-CBOR, signed over a domain-separated
 * encoding of every field but the signature.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { verifySignature, type Signer } from './ed25519.js'
import { deviceIdFromPublicKey, isDeviceId, publicKeyFromDeviceId, type DeviceId } from './device-id.js'
import { InvalidCertificateError } from './errors.js'
import type { SwarmId } from './user-root.js'

/** Who signed a membership record: the user root key, or a member device. */
export type Issuer = 'root' | DeviceId

/** "Device `device` (named `name`) is a member of swarm `swarm`." */
export interface DeviceCertificate {
  readonly v: 1
  readonly swarm: SwarmId
  readonly device: DeviceId
  readonly name: string
  readonly issuer: Issuer
  /** Issue time, ms since the epoch (informational). */
  readonly issued: number
  readonly sig: Uint8Array
}

/**
 * "Device `device` is no longer a member of swarm `swarm`": its entries up to seq `after` (what
 * the issuer held of it) stay valid, later ones are rejected everywhere.
 */
export interface DeviceRevocation {
  readonly v: 1
  readonly swarm: SwarmId
  readonly device: DeviceId
  readonly after: number
  readonly issuer: Issuer
  readonly issued: number
  readonly sig: Uint8Array
}

const enc = new TextEncoder()
const CERT_DOMAIN = enc.encode('peakdb/cert/v1\0')
const REVOKE_DOMAIN = enc.encode('peakdb/revoke/v1\0')
export const MAX_DEVICE_NAME = 64

function signedBytes (domain: Uint8Array, body: object): Uint8Array {
  const encoded = dagCbor.encode(body)
  const out = new Uint8Array(domain.length + encoded.length)
  out.set(domain)
  out.set(encoded, domain.length)
  return out
}

function issuerOf (signer: Signer, asRoot: boolean): Issuer {
  return asRoot ? 'root' : deviceIdFromPublicKey(signer.publicKey)
}

/** Normalises a device name: printable, trimmed, at most {@link MAX_DEVICE_NAME} characters. */
export function normaliseDeviceName (name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f]/g, '').trim().slice(0, MAX_DEVICE_NAME)
  return clean.length > 0 ? clean : 'device'
}

/**
 * Issues a device certificate. `asRoot` says whether `signer` is the user root key (true) or a
 * member device key (false).
 */
export function issueCertificate (init: { swarm: SwarmId, device: DeviceId, name: string, issued?: number }, signer: Signer, asRoot: boolean): DeviceCertificate {
  const body = {
    v: 1 as const,
    swarm: init.swarm,
    device: init.device,
    name: normaliseDeviceName(init.name),
    issuer: issuerOf(signer, asRoot),
    issued: init.issued ?? Date.now()
  }
  return { ...body, sig: signer.sign(signedBytes(CERT_DOMAIN, body)) }
}

/** Issues a revocation of `device`. */
export function issueRevocation (init: { swarm: SwarmId, device: DeviceId, after: number, issued?: number }, signer: Signer, asRoot: boolean): DeviceRevocation {
  const body = { v: 1 as const, swarm: init.swarm, device: init.device, after: init.after, issuer: issuerOf(signer, asRoot), issued: init.issued ?? Date.now() }
  return { ...body, sig: signer.sign(signedBytes(REVOKE_DOMAIN, body)) }
}

function fail (what: string): never {
  throw new InvalidCertificateError(what)
}

/** A field's value for an error message; String() would throw on a map such as {toString: 0}. */
function shown (value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 64) : typeof value === 'number' ? String(value) : typeof value
}

function checkCommon (r: Record<string, unknown>, swarm: SwarmId, kind: string): void {
  if (r.v !== 1) fail(`${kind}: unsupported version ${shown(r.v)}`)
  if (r.swarm !== swarm) fail(`${kind}: for swarm ${shown(r.swarm)}, expected ${swarm}`)
  if (!isDeviceId(r.device)) fail(`${kind}: "device" is not a DeviceId`)
  if (r.issuer !== 'root' && !isDeviceId(r.issuer)) fail(`${kind}: "issuer" is neither "root" nor a DeviceId`)
  if (typeof r.issued !== 'number' || !Number.isSafeInteger(r.issued) || r.issued < 0) fail(`${kind}: "issued" expected a non-negative integer`)
  if (!(r.sig instanceof Uint8Array) || r.sig.length !== 64) fail(`${kind}: "sig" expected 64 bytes`)
}

function checkSignature (domain: Uint8Array, body: object, issuer: Issuer, sig: Uint8Array, rootPublicKey: Uint8Array, kind: string): void {
  const key = issuer === 'root' ? rootPublicKey : publicKeyFromDeviceId(issuer)
  if (!verifySignature(key, signedBytes(domain, body), sig)) fail(`${kind}: bad signature by ${issuer}`)
}

/**
 * Checks a certificate's form and signature. It does not decide whether a device issuer is
 * itself a member; the membership registry does that.
 */
export function verifyCertificate (value: unknown, swarm: SwarmId, rootPublicKey: Uint8Array): DeviceCertificate {
  if (value === null || typeof value !== 'object') fail('certificate: expected a map')
  const r = value as Record<string, unknown>
  checkCommon(r, swarm, 'certificate')
  if (typeof r.name !== 'string' || r.name.length === 0 || r.name.length > MAX_DEVICE_NAME) fail(`certificate: "name" expected 1..${MAX_DEVICE_NAME} characters`)
  const cert = r as unknown as DeviceCertificate
  const { sig, ...body } = cert
  checkSignature(CERT_DOMAIN, { v: body.v, swarm: body.swarm, device: body.device, name: body.name, issuer: body.issuer, issued: body.issued }, cert.issuer, sig, rootPublicKey, 'certificate')
  return { v: 1, swarm: cert.swarm, device: cert.device, name: cert.name, issuer: cert.issuer, issued: cert.issued, sig }
}

/** Checks a revocation's form and signature (not the issuer's membership). */
export function verifyRevocation (value: unknown, swarm: SwarmId, rootPublicKey: Uint8Array): DeviceRevocation {
  if (value === null || typeof value !== 'object') fail('revocation: expected a map')
  const r = value as Record<string, unknown>
  checkCommon(r, swarm, 'revocation')
  if (typeof r.after !== 'number' || !Number.isSafeInteger(r.after) || r.after < 0) fail('revocation: "after" expected a non-negative integer')
  const rev = r as unknown as DeviceRevocation
  checkSignature(REVOKE_DOMAIN, { v: rev.v, swarm: rev.swarm, device: rev.device, after: rev.after, issuer: rev.issuer, issued: rev.issued }, rev.issuer, rev.sig, rootPublicKey, 'revocation')
  return { v: 1, swarm: rev.swarm, device: rev.device, after: rev.after, issuer: rev.issuer, issued: rev.issued, sig: rev.sig }
}

/** Encodes a certificate for storage (DAG-CBOR). */
export function encodeCertificate (cert: DeviceCertificate): Uint8Array {
  return dagCbor.encode(cert)
}

/** Encodes a revocation (DAG-CBOR), as stored and as shown to the revoked device. */
export function encodeRevocation (rev: DeviceRevocation): Uint8Array {
  return dagCbor.encode(rev)
}

function decodeRecord (bytes: Uint8Array, what: string): unknown {
  try {
    return dagCbor.decode(bytes)
  } catch {
    fail(`${what}: not valid DAG-CBOR`)
  }
}

/** Decodes and verifies a revocation's form and signature (see {@link verifyRevocation}). */
export function decodeRevocation (bytes: Uint8Array, swarm: SwarmId, rootPublicKey: Uint8Array): DeviceRevocation {
  return verifyRevocation(decodeRecord(bytes, 'revocation'), swarm, rootPublicKey)
}

/** Decodes and verifies a stored certificate. */
export function decodeCertificate (bytes: Uint8Array, swarm: SwarmId, rootPublicKey: Uint8Array): DeviceCertificate {
  return verifyCertificate(decodeRecord(bytes, 'certificate'), swarm, rootPublicKey)
}
