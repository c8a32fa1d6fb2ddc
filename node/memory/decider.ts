/**
 * Deciders: given a new fact and an older one about the same entity, say whether the new one
 * repeats the old (`duplicate`), replaces it (`contradiction`), or is about something else
 * (`unrelated`). The rule-based default works offline on the embedder's similarity and the
 * facts' words; the LLM decider asks an OpenAI-compatible or Ollama endpoint.
 */
import { z } from 'zod'

/** A decider could not decide (an LLM endpoint unreachable or failing): nothing was changed. */
export class MemoryDeciderError extends Error {
  static readonly code = 'ERR_MEMORY_DECIDER'
  override readonly name = 'MemoryDeciderError'
  readonly code = MemoryDeciderError.code
}

/** A fact as a decider sees it. */
export interface FactView {
  readonly id: string
  readonly content: string
  /** Lower-case entity names. */
  readonly entities: readonly string[]
  /** What about the entities it states (`city`, `employer`), when the writer said so. */
  readonly attribute?: string
}

/** Two facts sharing an entity, and the cosine similarity of their embeddings. */
export interface FactPair {
  readonly newer: FactView
  readonly older: FactView
  readonly similarity: number
}

export type Decision = 'duplicate' | 'contradiction' | 'unrelated'

/** Decides what a new fact does to older ones; `decide` answers one decision per pair, in order. */
export interface MemoryDecider {
  readonly name: string
  decide (pairs: readonly FactPair[], options?: { signal?: AbortSignal }): Promise<Decision[]>
}

/** Words that carry no fact. */
const STOP = new Set(('a an the and or but of to in on at by for with from as is are was were be been being has have had do does did ' +
  'this that these those it its his her their our my your he she they we i you them him me us s now still also currently today ' +
  'not no yes very really just there here than then so such into onto over under about after before again any all some each ' +
  'which who whom whose what when where why how would will can could should may might must shall am').split(' '))

/**
 * Relations a thing has one value of at a time: a second value replaces the first. Each maps the
 * words that state it to one key, so that "lives in" and "moved to" are the same relation.
 */
const FUNCTIONAL: ReadonlyArray<readonly [string, RegExp]> = [
  ['residence', /\b(lives?|living|resides?|residing|moved|relocated|based|home (?:is|town)|address)\b/],
  ['employer', /\b(works?|working|employed|employer|joined|job|hired)\b/],
  ['role', /\b(role|title|position|promoted)\b/],
  ['age', /\b(\d+ years? old|aged?)\b/],
  ['phone', /\b(phone|mobile|cell)\b/],
  ['email', /\b(e-?mail)\b/],
  ['partner', /\b(married|wife|husband|partner|engaged|spouse)\b/],
  ['birthday', /\b(birthday|born)\b/],
  ['favorite', /\b(favou?rite|prefers?|preferred)\b/],
  ['owns-car', /\b(drives?|driving|car)\b/],
  ['status', /\b(status|state)\b/],
  ['deadline', /\b(deadline|due)\b/],
  ['budget', /\b(budget|costs?|price|salary|earns?)\b/],
  ['speaks', /\b(native language|mother tongue)\b/],
  ['studies', /\b(studies|studying|major|degree)\b/]
]

/** Lower-case words, without stop words and the entities' own words. */
function contentWords (text: string, entities: readonly string[]): string[] {
  const skip = new Set(entities.flatMap(e => e.split(/[^a-z0-9]+/)))
  return text.toLowerCase().replace(/['’]s\b/g, '').split(/[^a-z0-9@.+-]+/)
    .map(w => w.replace(/^[.+-]+|[.+-]+$/g, ''))
    .filter(w => w.length > 0 && !STOP.has(w) && !skip.has(w))
}

/** The functional relation a fact states, and where its cue words are, or undefined. */
function relationOf (text: string): { key: string, at: number, end: number, digits: string[] } | undefined {
  const lower = text.toLowerCase()
  for (const [key, cue] of FUNCTIONAL) {
    const m = cue.exec(lower)
    if (m !== null) return { key, at: m.index, end: m.index + m[0].length, digits: m[0].match(/\d+/g) ?? [] }
  }
  return undefined
}

/** The entities a fact is about: those named before its relation's cue (all, without a cue). */
function subjectsOf (f: FactView, rel: { at: number } | undefined): string[] {
  if (rel === undefined) return [...f.entities]
  const lower = f.content.toLowerCase()
  return f.entities.filter(e => { const i = lower.indexOf(e); return i >= 0 && i < rel.at })
}

/** What a fact says of its subject: the words after its relation's cue (or all), without the subject's names. */
function valueOf (f: FactView, rel: { end: number, digits: string[] } | undefined, subjects: readonly string[]): Set<string> {
  const text = rel === undefined ? f.content : f.content.slice(rel.end)
  return new Set([...contentWords(text, subjects), ...(rel?.digits ?? [])].map(stem))
}

/** A crude suffix stripper: enough for "cats"/"cat", "moved"/"move". */
function stem (w: string): string {
  if (w.length > 4 && w.endsWith('ies')) return w.slice(0, -3) + 'y'
  if (w.length > 4 && w.endsWith('ing')) return w.slice(0, -3)
  if (w.length > 3 && w.endsWith('ed')) return w.slice(0, -2)
  if (w.length > 3 && w.endsWith('s') && !w.endsWith('ss')) return w.slice(0, -1)
  return w
}

function subset (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  for (const x of a) if (!b.has(x)) return false
  return true
}

function jaccard (a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  let both = 0
  for (const x of a) if (b.has(x)) both++
  const union = a.size + b.size - both
  return union === 0 ? 1 : both / union
}

/** Options of {@link RuleDecider}. */
export interface RuleDeciderOptions {
  /** Cosine similarity from which two facts without a known relation are one (default 0.9). */
  readonly duplicateSimilarity?: number
  /** Word overlap (Jaccard) from which two facts are one (default 0.8). */
  readonly duplicateOverlap?: number
}

/**
 * The offline default. Facts about different entities are always unrelated, and so are facts
 * whose subjects (the entities named before the relation) differ. Two facts stating the same
 * functional relation of the same subject (the same `attribute`, or recognised from words such
 * as "lives in", "works at", "favourite"): the same value (or one more precise) is a
 * duplicate, another value a contradiction. Otherwise only a near-identical statement (high similarity or word
 * overlap) is a duplicate; nothing else is touched. It errs towards `unrelated`: a missed merge
 * leaves two facts, a wrong invalidation would hide a true one.
 */
export class RuleDecider implements MemoryDecider {
  readonly name = 'rules'
  private readonly dupSim: number
  private readonly dupOverlap: number
  constructor (options: RuleDeciderOptions = {}) {
    this.dupSim = options.duplicateSimilarity ?? 0.9
    this.dupOverlap = options.duplicateOverlap ?? 0.8
  }

  async decide (pairs: readonly FactPair[]): Promise<Decision[]> {
    return pairs.map(p => this.one(p))
  }

  private one ({ newer, older, similarity }: FactPair): Decision {
    const shared = newer.entities.filter(e => older.entities.includes(e))
    if (shared.length === 0 && (newer.entities.length > 0 || older.entities.length > 0)) return 'unrelated'
    const rn = relationOf(newer.content)
    const ro = relationOf(older.content)
    const sn = subjectsOf(newer, rn)
    const so = subjectsOf(older, ro)
    // "Ada lives in Lisbon" and "Bob lives in Lisbon" share an entity, not a subject
    if (sn.length > 0 && so.length > 0 && !sn.some(e => so.includes(e))) return 'unrelated'
    const attributes = newer.attribute !== undefined && older.attribute !== undefined
    if (attributes && newer.attribute !== older.attribute) return 'unrelated'
    const sameRelation = attributes || (rn !== undefined && ro !== undefined && rn.key === ro.key)
    if (sameRelation) {
      const subjects = [...new Set([...sn, ...so])]
      const a = valueOf(newer, rn, subjects)
      const b = valueOf(older, ro, subjects)
      if (a.size === 0 || b.size === 0) return similarity >= this.dupSim ? 'duplicate' : 'unrelated'
      // the same value, or one said more precisely ("Lisbon" / "Lisbon, Portugal")
      return subset(a, b) || subset(b, a) || jaccard(a, b) >= this.dupOverlap ? 'duplicate' : 'contradiction'
    }
    const a = new Set(contentWords(newer.content, []).map(stem))
    const b = new Set(contentWords(older.content, []).map(stem))
    return similarity >= this.dupSim || jaccard(a, b) >= this.dupOverlap ? 'duplicate' : 'unrelated'
  }
}

/** Options of {@link LlmDecider}. */
export interface LlmDeciderOptions {
  /**
   * The endpoint's base URL: an OpenAI-compatible API (`http://127.0.0.1:8080/v1`, its
   * `/chat/completions` is called) or Ollama (`http://127.0.0.1:11434`, its `/api/chat`).
   */
  readonly url: string
  readonly model: string
  readonly api?: 'openai' | 'ollama'
  /** Sent as a bearer token (OpenAI-compatible); never logged. */
  readonly apiKey?: string
  /** Per request, ms (default 60000). */
  readonly timeoutMs?: number
}

const answerSchema = z.object({ decision: z.enum(['duplicate', 'contradiction', 'unrelated']) })

const PROMPT = `You maintain a memory of facts. Compare a NEW fact with an OLD fact.
Answer with JSON only: {"decision": "duplicate" | "contradiction" | "unrelated"}.
- duplicate: both state the same thing about the same entity (paraphrases count).
- contradiction: both are about the same property of the same entity, and the NEW value replaces the OLD one.
- unrelated: anything else, including different properties of the same entity. When unsure, answer unrelated.`

/**
 * Asks a language model for each pair. An answer that is not one of the three decisions counts
 * as `unrelated` (nothing is touched); an endpoint that cannot be reached or fails is a
 * {@link MemoryDeciderError}, and the consolidation stops before changing anything.
 */
export class LlmDecider implements MemoryDecider {
  readonly name: string
  constructor (private readonly options: LlmDeciderOptions) {
    this.name = `llm:${options.model}`
  }

  async decide (pairs: readonly FactPair[], options: { signal?: AbortSignal } = {}): Promise<Decision[]> {
    const out: Decision[] = []
    for (const p of pairs) out.push(await this.one(p, options.signal))
    return out
  }

  private async one (p: FactPair, signal: AbortSignal | undefined): Promise<Decision> {
    const o = this.options
    const api = o.api ?? (/:11434\b/.test(o.url) ? 'ollama' : 'openai')
    const base = o.url.replace(/\/+$/, '')
    const messages = [
      { role: 'system', content: PROMPT },
      { role: 'user', content: `Entities: ${[...new Set([...p.newer.entities, ...p.older.entities])].join(', ') || '(none named)'}\nOLD: ${p.older.content}\nNEW: ${p.newer.content}` }
    ]
    const body = api === 'ollama'
      ? { model: o.model, messages, stream: false, format: 'json', options: { temperature: 0 } }
      : { model: o.model, messages, temperature: 0, response_format: { type: 'json_object' } }
    const timeout = AbortSignal.timeout(o.timeoutMs ?? 60_000)
    let res: Response
    try {
      res = await fetch(api === 'ollama' ? `${base}/api/chat` : `${base}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(o.apiKey !== undefined ? { authorization: `Bearer ${o.apiKey}` } : {}) },
        body: JSON.stringify(body),
        signal: signal !== undefined ? AbortSignal.any([signal, timeout]) : timeout
      })
    } catch (err) {
      throw new MemoryDeciderError(`memory decider ${this.name}: cannot reach ${base}: ${(err as Error).message}`, { cause: err })
    }
    if (!res.ok) throw new MemoryDeciderError(`memory decider ${this.name}: ${base} answered HTTP ${res.status}`)
    const json = await res.json() as { choices?: Array<{ message?: { content?: string } }>, message?: { content?: string } }
    const text = api === 'ollama' ? json.message?.content : json.choices?.[0]?.message?.content
    try {
      const parsed = answerSchema.safeParse(JSON.parse(text ?? ''))
      return parsed.success ? parsed.data.decision : 'unrelated'
    } catch {
      return 'unrelated'
    }
  }
}
