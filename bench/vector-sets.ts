/**
 * The seeded vector sets the vector benchmarks search (an isotropic random set and a clustered
 * one), brute-force ground truth over them, and recall.
 */
import { createRequire } from 'node:module'
import type { exactSearch as ExactSearch } from 'usearch'
import { prng } from '../test/helpers/prng.js'

const usearch = createRequire(import.meta.url)('usearch') as { exactSearch: typeof ExactSearch }

/** 'random': isotropic unit vectors; 'clustered': 100 centres with points spread around them. */
export type VectorSetKind = 'random' | 'clustered'

/** N unit vectors in one flat array, and queries drawn from the same distribution. */
export interface VectorSet {
  readonly kind: VectorSetKind
  readonly dims: number
  readonly size: number
  /** Vector i is `flat[i * dims .. (i + 1) * dims]`. */
  readonly flat: Float32Array
  readonly queries: readonly Float32Array[]
  vectorOf: (i: number) => Float32Array
}

function unit (v: Float32Array): Float32Array {
  let s = 0
  for (const x of v) s += x * x
  const n = Math.sqrt(s) || 1
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / n
  return v
}

/**
 * The set of a kind: the same vectors for the same arguments in every run. Clustered points lie
 * around 100 centres, as sentence embeddings do; random ones have no structure at all.
 */
export function vectorSet (kind: VectorSetKind, size: number, queries: number, dims = 512): VectorSet {
  const rand = prng(kind === 'random' ? 1 : 2)
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
  const centres = Array.from({ length: 100 }, () => unit(Float32Array.from({ length: dims }, gauss)))
  const point = (): Float32Array => {
    if (kind === 'random') return unit(Float32Array.from({ length: dims }, gauss))
    const c = centres[Math.floor(rand() * centres.length)] as Float32Array
    return unit(Float32Array.from(c, x => x + 0.06 * gauss()))
  }
  const flat = new Float32Array(size * dims)
  for (let i = 0; i < size; i++) flat.set(point(), i * dims)
  return {
    kind,
    dims,
    size,
    flat,
    queries: Array.from({ length: queries }, point),
    vectorOf: i => flat.subarray(i * dims, (i + 1) * dims)
  }
}

/** Indexes of the k vectors nearest to `q` by cosine (usearch's SIMD exact search, 2 threads). */
export function exactNeighbours (set: VectorSet, q: Float32Array, k: number): number[] {
  const m = usearch.exactSearch(set.flat, q, set.dims, k, 'cos' as never, 2) as { keys: BigUint64Array }
  return [...m.keys].map(Number)
}

/** Share of `want` found in `got`. */
export function recall (got: readonly string[], want: readonly string[]): number {
  const w = new Set(want)
  return got.filter(id => w.has(id)).length / want.length
}
