/**
 * Embeddings from an HTTP endpoint the user runs: OpenAI-compatible (`POST <url>/embeddings`,
 * `{ model, input }` -> `{ data: [{ embedding }] }`, as served by llama.cpp, vLLM, LM Studio…)
 * or Ollama (`POST <url>/api/embed`, `{ model, input }` -> `{ embeddings }`).
 */
import { EmbedderError, type Embedder, type EmbedOptions } from './embedder.js'

/** Options of {@link createHttpEmbedder}. */
export interface HttpEmbedderOptions {
  /** Base URL, e.g. `http://127.0.0.1:11434` (Ollama) or `http://127.0.0.1:8080/v1` (OpenAI-compatible). */
  readonly url: string
  readonly model: string
  readonly kind?: 'openai' | 'ollama'
  /** Sent as a bearer token (OpenAI-compatible servers that want one). */
  readonly apiKey?: string
  /** Texts per request (default 64). */
  readonly batchSize?: number
  /** Per-request timeout (default 60 s). */
  readonly timeoutMs?: number
}

class HttpEmbedder implements Embedder {
  readonly id: string
  constructor (private readonly o: HttpEmbedderOptions & { kind: 'openai' | 'ollama' }, readonly dims: number) {
    this.id = `${o.kind}:${o.model}`
  }

  async request (texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const base = this.o.url.replace(/\/+$/, '')
    const url = this.o.kind === 'ollama' ? `${base}/api/embed` : `${base}/embeddings`
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? 60_000)
    let res: Response
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(this.o.apiKey !== undefined ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
        body: JSON.stringify({ model: this.o.model, input: texts }),
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout])
      })
    } catch (err) {
      throw new EmbedderError(`embedding endpoint ${url} did not answer: ${(err as Error).message}`)
    }
    if (!res.ok) throw new EmbedderError(`embedding endpoint ${url} answered HTTP ${res.status}`)
    let body: { data?: Array<{ embedding?: unknown, index?: number }>, embeddings?: unknown }
    try {
      body = await res.json() as typeof body
    } catch {
      throw new EmbedderError(`embedding endpoint ${url} sent a response that is not JSON`)
    }
    const raw: unknown[] = this.o.kind === 'ollama'
      ? (Array.isArray(body.embeddings) ? body.embeddings : [])
      : (Array.isArray(body.data) ? [...body.data].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)).map(d => d.embedding) : [])
    if (raw.length !== texts.length) throw new EmbedderError(`embedding endpoint ${url} returned ${raw.length} vectors for ${texts.length} texts`)
    return raw.map((v, i) => {
      if (!Array.isArray(v) || !v.every(x => typeof x === 'number' && Number.isFinite(x))) throw new EmbedderError(`embedding endpoint ${url}: vector ${i} is not a list of numbers`)
      if (this.dims > 0 && v.length !== this.dims) throw new EmbedderError(`embedding endpoint ${url}: vector ${i} has ${v.length} dimensions, expected ${this.dims}`)
      return Float32Array.from(v as number[])
    })
  }

  async embed (texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const out: Float32Array[] = []
    const batch = this.o.batchSize ?? 64
    for (let i = 0; i < texts.length; i += batch) out.push(...await this.request(texts.slice(i, i + batch), options.signal))
    return out
  }
}

/**
 * Connects to an embeddings endpoint; learns the vector size with one probe request.
 *
 * @example
 * ```ts
 * const embedder = await createHttpEmbedder({ url: 'http://127.0.0.1:11434', model: 'nomic-embed-text', kind: 'ollama' })
 * const node = await PeakNode.open({ dir: './data', embedder })
 * ```
 */
export async function createHttpEmbedder (options: HttpEmbedderOptions): Promise<Embedder> {
  const o = { ...options, kind: options.kind ?? 'openai' as const }
  const probe = new HttpEmbedder(o, 0)
  const [v] = await probe.request(['dimension probe'])
  if (v === undefined || v.length === 0) throw new EmbedderError(`embedding endpoint ${options.url} returned an empty vector`)
  return new HttpEmbedder(o, v.length)
}
