/**
 * Deterministic test embedders: words hashed into a fixed-size vector (a bag of words). Real
 * vectors, real math, no model: enough to test indexing, filters, restarts and model changes.
 */
import { createHash } from 'node:crypto'
import type { Embedder } from '../../node/index.js'

export function hashEmbedder (id = 'hash-64', dims = 64): Embedder & { calls: number, texts: number } {
  const e = {
    id,
    dims,
    calls: 0,
    texts: 0,
    async embed (texts: readonly string[]): Promise<Float32Array[]> {
      e.calls++
      e.texts += texts.length
      return texts.map(t => {
        const v = new Float32Array(dims)
        for (const w of t.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
          const h = createHash('sha256').update(`${id}:${w}`).digest()
          v[h.readUInt16BE(0) % dims] = (v[h.readUInt16BE(0) % dims] as number) + 1
        }
        return v
      })
    }
  }
  return e
}
