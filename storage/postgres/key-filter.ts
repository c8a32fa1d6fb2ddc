/**
 * Which documents may exist, without asking the server: a Bloom filter of the `(collection, id)`
 * keys of the docs table. A key it does not hold is certainly new, so a commit that creates
 * documents (the common case: generated ids) skips reading them first. This process is the
 * schema's one writer, so the filter sees every insert; it only ever over-approximates (deleted
 * documents stay in it), and grows by rebuilding from the table.
 */
import { createHash } from 'node:crypto'
import type { Queryable } from './plan.js'

const HASHES = 7
/** Bits per key at rebuild: about 1 % false positives until the filter holds twice as many. */
const BITS_PER_KEY = 20
const MIN_BITS = 1 << 20

export class KeyFilter {
  private bits = new Uint32Array(MIN_BITS / 32)
  private size = MIN_BITS
  private count = 0

  private positions (collection: string, id: string): number[] {
    const d = createHash('sha256').update(collection).update('\0').update(id).digest()
    const h1 = d.readUInt32LE(0)
    const h2 = d.readUInt32LE(4) | 1
    const out: number[] = []
    for (let i = 0; i < HASHES; i++) out.push((h1 + Math.imul(i, h2)) >>> 0 & (this.size - 1))
    return out
  }

  /** False when the key is certainly not in the table. */
  mayHold (collection: string, id: string): boolean {
    return this.positions(collection, id).every(p => ((this.bits[p >>> 5] as number) & (1 << (p & 31))) !== 0)
  }

  add (collection: string, id: string): void {
    for (const p of this.positions(collection, id)) this.bits[p >>> 5] = (this.bits[p >>> 5] as number) | (1 << (p & 31))
    this.count++
  }

  /** True when it holds more keys than it was sized for (rebuild it). */
  get full (): boolean {
    return this.count * (BITS_PER_KEY / 2) > this.size
  }

  /** Rebuilds from the docs table, sized for twice the keys it holds. */
  async rebuild (db: Queryable): Promise<void> {
    const total = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM docs')).rows[0]?.n ?? 0)
    let size = MIN_BITS
    while (size < total * BITS_PER_KEY * 2) size *= 2
    this.size = size
    this.bits = new Uint32Array(size / 32)
    this.count = 0
    for (let after = 0; ;) {
      const { rows } = await db.query<{ rid: number, collection: string, id: string }>('SELECT rid, collection, id FROM docs WHERE rid > $1 ORDER BY rid LIMIT 10000', [after])
      for (const r of rows) this.add(r.collection, r.id)
      if (rows.length < 10_000) return
      after = (rows[rows.length - 1] as { rid: number }).rid
    }
  }
}
