/**
 * The embedder contract: anything that turns texts into fixed-size vectors. A node has one
 * embedder; every stored vector is tagged with its `id`, so changing the model re-embeds.
 */

/** Options of an embedding call. */
export interface EmbedOptions {
  readonly signal?: AbortSignal
  /** Nobody waits for this work (background indexing): use fewer resources (e.g. one thread). */
  readonly background?: boolean
}

/** Turns texts into vectors of `dims` numbers. */
export interface Embedder {
  /** Names the model (and version): vectors of different ids are never compared. */
  readonly id: string
  readonly dims: number
  /** One vector per text, in order. Vectors need not be normalised; PeakDB normalises them. */
  embed (texts: readonly string[], options?: EmbedOptions): Promise<Float32Array[]>
  /** Releases the model (worker threads, sockets). */
  close? (): Promise<void>
}

/** The embedder failed (model missing, worker died, endpoint error, wrong dimensions). */
export class EmbedderError extends Error {
  static readonly code = 'ERR_EMBEDDER'
  override readonly name = 'EmbedderError'
  readonly code = EmbedderError.code
}

/** Scales a vector to unit length (in place) and returns it. */
export function normalise (v: Float32Array): Float32Array {
  let s = 0
  for (let i = 0; i < v.length; i++) s += (v[i] as number) ** 2
  const n = Math.sqrt(s)
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / n
  return v
}
