/**
 * Sealing throughput: PeakDB's XChaCha20-Poly1305 (HChaCha20 from @noble/ciphers + Node's
 * chacha20-poly1305, with the per-sealer nonce prefix) next to @noble/ciphers'
 * xchacha20poly1305, for 1 KiB and 1 MiB payloads; and opening.
 */
import { randomBytes } from 'node:crypto'
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js'
import { open, PayloadSealer, seal } from '../identity/index.js'
import { round } from './stats.js'

function mbPerSec (size: number, iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(iterations, 50); i++) fn()
  const t = performance.now()
  for (let i = 0; i < iterations; i++) fn()
  const seconds = (performance.now() - t) / 1000
  return round((size * iterations) / seconds / (1024 * 1024), 1)
}

/** Runs the sealing benchmark. */
export function sealingBench (): Record<string, unknown> {
  const key = randomBytes(32)
  const aad = randomBytes(120)
  const out: Record<string, unknown> = {}
  for (const [label, size, n] of [['1KiB', 1024, 20_000], ['1MiB', 1024 * 1024, 60]] as const) {
    const p = randomBytes(size)
    const sealer = new PayloadSealer(key)
    const sealed = seal(key, p, aad)
    out[label] = {
      peakdbSealerMBps: mbPerSec(size, n, () => sealer.seal(p, aad)),
      peakdbSealMBps: mbPerSec(size, n, () => seal(key, p, aad)),
      peakdbOpenMBps: mbPerSec(size, n, () => open(key, sealed, aad)),
      nobleSealMBps: mbPerSec(size, Math.max(10, Math.floor(n / 4)), () => xchacha20poly1305(key, randomBytes(24), aad).encrypt(p)),
      nobleOpenMBps: mbPerSec(size, Math.max(10, Math.floor(n / 4)), () => xchacha20poly1305(key, sealed.subarray(0, 24), aad).decrypt(sealed.subarray(24)))
    }
  }
  return out
}
