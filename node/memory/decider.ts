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
  'which who whom whose what when where why how would will can could should may might must shall am new current own well too').split(' '))

/**
 * Relations a thing has one value of at a time: a second value replaces the first. Each maps the
 * words that state it to one key ("lives in" and "moved to" are one relation), the specific ones
 * first ("work email" is an email, not an employer). `valueInCue`: the cue words are part of the
 * value ("on hold", "in beta"). A favourite is one relation per kind of thing (food, colour, …).
 */
const FUNCTIONAL: ReadonlyArray<{ readonly key: string, readonly cue: RegExp, readonly valueInCue?: boolean }> = [
  { key: 'email', cue: /\be-?mail\b/ },
  { key: 'phone', cue: /\b(phone|mobile|cell)( number)?\b|\b(reach(?:ed)?)\b/ },
  { key: 'birthday', cue: /\b(birthday|born)\b/ },
  { key: 'age', cue: /\b(\d+ years? old|aged? \d+|turned \d+)\b/ },
  { key: 'headcount', cue: /\b(employees|employs|headcount|staff of)\b/ },
  { key: 'deadline', cue: /\b(deadline|due date|due)\b/ },
  { key: 'hours', cue: /\b(opens?|closes?|open until|opening hours)\b/ },
  { key: 'partner', cue: /\b(married|wife|husband|partner|engaged|spouse)\b/ },
  { key: 'favorite', cue: /\b(favou?rite|preferred)\b/ },
  // "for a living" is a job, not a home
  { key: 'residence', cue: /\b(lives?|lived|(?<!\ba )living|resides?|residing|moved|relocated|based|headquarter(?:s|ed)?|main office|home (?:is|town))\b/ },
  { key: 'employer', cue: /\b((?:works?|working|job|employed) (?:at|for|by)|employer|joined|hired by|new job)\b/ },
  { key: 'role', cue: /\b(role|job title|title|position|promoted|works? as|a living|occupation|profession)\b/ },
  { key: 'status', cue: /\b(status|phase|stage|beta|alpha|launched|on hold|paused|complete[d]?|in progress|restarted|cancel+ed|shipped|planning)\b/, valueInCue: true },
  { key: 'car', cue: /\b(drives?|driving|car)\b/ },
  { key: 'salary', cue: /\b(salary|earns?|budget|price|costs?)\b/ }
]

/** Kinds of favourite thing named differently. */
const KIND_SYNONYMS: Readonly<Record<string, string>> = { novel: 'book', meal: 'food', dish: 'food', colour: 'color', film: 'movie', song: 'music', band: 'music', sport: 'sport', team: 'team' }

/** Lower-case words, without stop words and the entities' own words. */
function contentWords (text: string, entities: readonly string[]): string[] {
  const skip = new Set(entities.flatMap(e => e.split(/[^a-z0-9]+/)))
  return text.toLowerCase().replace(/['’]s\b/g, '').split(/[^a-z0-9@.+-]+/)
    .map(w => w.replace(/^[.+-]+|[.+-]+$/g, ''))
    .filter(w => w.length > 0 && !STOP.has(w) && !skip.has(w))
}

/** A relation found in a fact: its key and where its cue words are. */
interface Relation { readonly key: string, readonly at: number, readonly end: number, readonly cueValue: readonly string[] }

/** The functional relation a fact states, or undefined. */
function relationOf (text: string): Relation | undefined {
  const lower = text.toLowerCase()
  for (const r of FUNCTIONAL) {
    const m = r.cue.exec(lower)
    if (m === null) continue
    const end = m.index + m[0].length
    let key = r.key
    // a favourite what: the first word after the cue ("favourite food", "favourite thing to eat")
    if (key === 'favorite') {
      const kind = contentWords(lower.slice(end), [])[0]
      key = `favorite:${kind === undefined ? '' : KIND_SYNONYMS[kind] ?? stem(kind)}`
    }
    const cueValue = r.valueInCue === true ? contentWords(m[0], []) : (m[0].match(/\d+/g) ?? [])
    // the kind of a favourite is part of the relation, not of its value
    const kindEnd = r.key === 'favorite' ? kindEndAfter(lower, end) : end
    return { key, at: m.index, end: kindEnd, cueValue }
  }
  return undefined
}

/** Where the first content word after `from` ends (the kind of a favourite). */
function kindEndAfter (lower: string, from: number): number {
  const re = /[a-z0-9]+/g
  re.lastIndex = from
  for (let m = re.exec(lower); m !== null; m = re.exec(lower)) if (!STOP.has(m[0])) return m.index + m[0].length
  return from
}

/** The one-valued relation a text speaks of ("phone", "residence", "favorite:food"), if any: recall prefers facts of the relation a question asks about. */
export function relationKey (text: string): string | undefined {
  return relationOf(text)?.key
}

/** The entities a fact is about: those named before its relation's cue (all, without a cue). */
function subjectsOf (f: FactView, rel: { at: number } | undefined): string[] {
  if (rel === undefined) return [...f.entities]
  const lower = f.content.toLowerCase()
  return f.entities.filter(e => { const i = lower.indexOf(e); return i >= 0 && i < rel.at })
}

/** What a fact says of its subject: the words after its relation's cue (or all), without the subject's names. */
function valueOf (f: FactView, rel: Relation | undefined, subjects: readonly string[]): Set<string> {
  // a change "from A to B" states B
  const text = (rel === undefined ? f.content : f.content.slice(rel.end)).replace(/\bfrom\b.*?\bto\b/i, ' ')
  return new Set([...contentWords(text, subjects), ...(rel?.cueValue ?? [])].map(stem))
}

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december']

/**
 * The identifiers in a fact: numbers (ordinals as numbers: "14th" is 14), e-mail addresses and
 * month names. Where both facts hold some, they decide: the same ones are the same value.
 */
function identifiers (text: string): Set<string> {
  const lower = text.toLowerCase()
  const out = new Set<string>()
  for (const m of lower.matchAll(/[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}/g)) out.add(m[0])
  const rest = lower.replace(/[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}/g, ' ')
  for (const m of rest.matchAll(/\d+(?:[.,]\d+)*(?:st|nd|rd|th)?\b/g)) out.add(m[0].replace(/(st|nd|rd|th)$/, '').replace(/,/g, ''))
  for (const w of rest.split(/[^a-z]+/)) if (MONTHS.includes(w)) out.add(w)
  return out
}

/** A crude suffix stripper: enough for "cats"/"cat", "moved"/"move". */
function stem (w: string): string {
  if (w.length > 4 && w.endsWith('ies')) return w.slice(0, -3) + 'y'
  if (w.length > 5 && w.endsWith('ing')) return w.slice(0, -3)
  if (w.length > 4 && w.endsWith('ed')) return w.slice(0, -2)
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
  /** For two facts of one relation: the overlap of their values from which they say the same (default 0.5). */
  readonly sameValueOverlap?: number
  /** For two facts of one relation: the similarity from which they say the same (default 0.85). */
  readonly sameValueSimilarity?: number
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
  private readonly sameValueOverlap: number
  private readonly sameValueSim: number
  constructor (options: RuleDeciderOptions = {}) {
    this.dupSim = options.duplicateSimilarity ?? 0.9
    this.dupOverlap = options.duplicateOverlap ?? 0.8
    this.sameValueOverlap = options.sameValueOverlap ?? 0.5
    this.sameValueSim = options.sameValueSimilarity ?? 0.85
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
    // numbers, e-mail addresses and dates decide where both facts have some
    const ia = identifiers(newer.content.replace(/\bfrom\b.*?\bto\b/i, ' '))
    const ib = identifiers(older.content)
    const sameIds = ia.size > 0 && ib.size > 0 ? subset(ia, ib) || subset(ib, ia) : undefined
    if (!sameRelation) {
      // "opens at 7 am" is no repeat of "opens at 8 am", however alike the sentences
      if (sameIds === false) return 'unrelated'
      const a = new Set(contentWords(newer.content, []).map(stem))
      const b = new Set(contentWords(older.content, []).map(stem))
      return similarity >= this.dupSim || jaccard(a, b) >= this.dupOverlap ? 'duplicate' : 'unrelated'
    }
    if (sameIds !== undefined) return sameIds ? 'duplicate' : 'contradiction'
    // only the subject both share is taken out of the values ("left Lumen Labs and joined Brightpath")
    const subjects = sn.length > 0 && so.length > 0 ? sn.filter(e => so.includes(e)) : [...new Set([...sn, ...so])]
    // the words of a relation are not its value, also where the writer named the attribute
    const a = valueOf(newer, rn, subjects)
    const b = valueOf(older, ro, subjects)
    if (a.size === 0 || b.size === 0) return similarity >= this.dupSim ? 'duplicate' : 'unrelated'
    // the same value, one said more precisely ("Lisbon" / "Lisbon, Portugal"), or the same meaning
    if (subset(a, b) || subset(b, a) || jaccard(a, b) >= this.sameValueOverlap || similarity >= this.sameValueSim) return 'duplicate'
    return 'contradiction'
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
