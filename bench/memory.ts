/**
 * Agent memory (`node.memory`): quality on the labeled set bench/data/memory-set.json and speed.
 *
 *   node dist/bench/memory.js [quality] [recall] [real] [consolidate] [writes]   # default: all
 *
 * Quality (default embedder, the rule decider, one fresh node per mode): every fact is
 * remembered as knowledge in timeline order (with its `validFrom`), then one `consolidate()`;
 * then duplicate merging precision/recall, contradictions applied and wrongly applied, and
 * top-1 of `recall` for the current answer and at `asOf`, per split (dev/test) and overall.
 * Two modes: "words" (no `attribute`: the decider reads the sentences) and "attribute" (the
 * labeled attribute passed for single-valued properties; multi-valued ones, such as languages
 * or pets, go without, since facts with one attribute replace each other). A third run applies the
 * labels themselves instead of consolidating: the top-1 that ranking alone reaches.
 *
 * Speed:
 *  - recall over BENCH_MEMORIES knowledge memories (default 100,000), filled with a cheap
 *    deterministic embedder of the default model's size (512) straight into the knowledge
 *    collection (`remember` runs at a few hundred per second: see "writes"); then 50 `remember`
 *    calls into it and one `consolidate()` of them;
 *  - the default embedder: one query embedding, and recall over BENCH_MEMORIES_REAL memories
 *    (default 5,000) filled through `remember` and embedded by the model;
 *  - consolidation of BENCH_MEMORY_CONTEXT new context items (default 1,000; some repeated,
 *    some recalled) with the default embedder;
 *  - the write path: `remember` (knowledge, context) next to `collection.put` of a similar
 *    document and a raw better-sqlite3 autocommit insert, BENCH_MEMORY_WRITES each (default 2,000).
 *
 * Prints one JSON object on stdout.
 */
import '../node/polyfills.js'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PeakNode, type Collection, type Embedder } from '../node/index.js'
import { peakRssMb, percentile, rawAutocommitPerSec, round } from './stats.js'

interface SetFact {
  id: string
  content: string
  entities: string[]
  validFrom: string
  attribute: string
  multiValued?: boolean
  group: string
  replaces?: string
  split: 'dev' | 'test'
}
interface SetQuery { id: string, text: string, entity: string, split: 'dev' | 'test', expected: string, asOf?: string, expectedAsOf?: string }
interface MemorySet { entities: Array<{ name: string, split: string }>, facts: SetFact[], queries: SetQuery[] }

const here = dirname(fileURLToPath(import.meta.url))
const MEMORIES = Number(process.env.BENCH_MEMORIES ?? 100_000)
const MEMORIES_REAL = Number(process.env.BENCH_MEMORIES_REAL ?? 5000)
const CONTEXT = Number(process.env.BENCH_MEMORY_CONTEXT ?? 1000)
const WRITES = Number(process.env.BENCH_MEMORY_WRITES ?? 2000)

function tempDir (what: string): string {
  return mkdtempSync(join(tmpdir(), `peakdb-bench-memory-${what}-`))
}

function ms (values: readonly number[]): { p50: number, p95: number } {
  return { p50: round(percentile(values, 50), 2), p95: round(percentile(values, 95), 2) }
}

function loadSet (): MemorySet {
  // from bench/ (sources) or dist/bench/ (built)
  const file = [join(here, 'data', 'memory-set.json'), join(here, '..', '..', 'bench', 'data', 'memory-set.json')].find(f => existsSync(f)) ?? 'bench/data/memory-set.json'
  return JSON.parse(readFileSync(file, 'utf8')) as MemorySet
}

/** The knowledge collection behind `node.memory` (a system collection, not reachable by name). */
function knowledgeOf (node: PeakNode): Collection {
  return (node.memory as unknown as { ctx: { knowledge: Collection } }).ctx.knowledge
}

// ---------------------------------------------------------------------------------------------
// quality

type Split = 'dev' | 'test' | 'all'
const SPLITS: Split[] = ['dev', 'test', 'all']

/** Disjoint sets over fact ids. */
class Clusters {
  private readonly parent = new Map<string, string>()
  find (x: string): string {
    let p = this.parent.get(x) ?? x
    if (p !== x) { p = this.find(p); this.parent.set(x, p) }
    return p
  }

  union (a: string, b: string): void { this.parent.set(this.find(a), this.find(b)) }
}

/**
 * One mode: `words` and `attribute` remember and consolidate; `labels` remembers, then applies
 * the set's own labels instead of consolidating (duplicates merged into the first of their group,
 * replaced facts invalid from their replacement's validFrom): the ranking's ceiling.
 */
async function qualityMode (set: MemorySet, mode: 'words' | 'attribute' | 'labels'): Promise<Record<string, unknown>> {
  const withAttribute = mode === 'attribute'
  const dir = tempDir('quality')
  const node = await PeakNode.open({ dir, backgroundIndexing: false })
  try {
    const byFact = new Map(set.facts.map(f => [f.id, f]))
    const factOf = new Map<string, string>() // memory id -> fact id (the first remembered)
    const memoryOf = new Map<string, string>()
    let t = performance.now()
    for (const f of set.facts) { // already in timeline order
      const id = await node.memory.remember(f.content, {
        kind: 'knowledge',
        entities: f.entities,
        validFrom: f.validFrom,
        source: `memory-set:${f.id}`,
        ...(withAttribute && f.multiValued !== true ? { attribute: f.attribute } : {})
      })
      if (!factOf.has(id)) factOf.set(id, f.id)
      memoryOf.set(f.id, id)
    }
    const rememberSeconds = (performance.now() - t) / 1000
    t = performance.now()
    const result = mode === 'labels' ? { merges: [], invalidations: [], examined: 0 } : await node.memory.consolidate()
    const consolidateSeconds = (performance.now() - t) / 1000
    if (mode === 'labels') {
      const knowledge = knowledgeOf(node)
      const first = new Map<string, SetFact>()
      for (const f of set.facts) if (!first.has(f.group)) first.set(f.group, f)
      const mem = (f: SetFact): string => memoryOf.get(f.id) as string
      for (const f of set.facts) {
        const keep = first.get(f.group) as SetFact
        if (keep !== f) await knowledge.patch(mem(f), { mergedInto: mem(keep) })
        if (f.replaces !== undefined) await knowledge.patch(mem(byFact.get(f.replaces) as SetFact), { invalidFrom: f.validFrom, invalidatedBy: mem(f) })
      }
    }
    const fact = (memoryId: string): SetFact => {
      const f = byFact.get(factOf.get(memoryId) ?? '')
      if (f === undefined) throw new Error(`memory ${memoryId} is no fact of the set`)
      return f
    }

    // labels: duplicate pairs, and which group replaces which (transitively)
    const groups = new Map<string, SetFact[]>()
    for (const f of set.facts) groups.set(f.group, [...(groups.get(f.group) ?? []), f])
    const replacedGroup = new Map<string, string>() // group -> group it replaces
    for (const f of set.facts) if (f.replaces !== undefined) replacedGroup.set(f.group, (byFact.get(f.replaces) as SetFact).group)
    const replacesTransitively = (newer: string, older: string): boolean => {
      for (let g = replacedGroup.get(newer); g !== undefined; g = replacedGroup.get(g)) if (g === older) return true
      return false
    }

    // merges: an edge is right when both facts are in one labeled group; recall over labeled pairs
    const clusters = new Clusters()
    const merges = result.merges.map(m => ({ into: fact(m.into), from: fact(m.from) }))
    for (const m of merges) clusters.union(m.into.id, m.from.id)
    // invalidations: right when the newer fact's group replaces the older's (directly or through a chain)
    const invalidations = result.invalidations.map(i => ({ old: fact(i.id), by: fact(i.by) }))

    const inSplit = (s: Split, f: { split: string }): boolean => s === 'all' || f.split === s
    const hitFact = async (text: string, asOf?: string): Promise<SetFact | undefined> => {
      const [hit] = await node.memory.recall(text, { k: 1, ...(asOf !== undefined ? { asOf } : {}) })
      return hit === undefined ? undefined : fact(hit.memory.id)
    }
    const answers = new Map<string, { now: SetFact | undefined, then: SetFact | undefined }>()
    t = performance.now()
    for (const q of set.queries) {
      answers.set(q.id, { now: await hitFact(q.text), then: q.asOf !== undefined ? await hitFact(q.text, q.asOf) : undefined })
    }
    const recallSeconds = (performance.now() - t) / 1000

    const bySplit: Record<string, unknown> = {}
    for (const s of SPLITS) {
      const ms = merges.filter(m => inSplit(s, m.from))
      const rightMerges = ms.filter(m => m.into.group === m.from.group)
      let pairs = 0
      let collapsed = 0
      for (const list of groups.values()) {
        if (!inSplit(s, list[0] as SetFact)) continue
        for (let i = 0; i < list.length; i++) {
          for (let j = i + 1; j < list.length; j++) {
            pairs++
            if (clusters.find((list[i] as SetFact).id) === clusters.find((list[j] as SetFact).id)) collapsed++
          }
        }
      }
      const labeled = set.facts.filter(f => f.replaces !== undefined && inSplit(s, f))
      const applied = labeled.filter(f => {
        const old = (byFact.get(f.replaces as string) as SetFact).group
        return invalidations.some(i => i.old.group === old && i.by.group === f.group)
      })
      const invs = invalidations.filter(i => inSplit(s, i.old))
      const wrong = invs.filter(i => !replacesTransitively(i.by.group, i.old.group))
      const qs = set.queries.filter(q => inSplit(s, q))
      const asOfQs = qs.filter(q => q.asOf !== undefined)
      const right = (got: SetFact | undefined, expected: string): boolean => got !== undefined && got.group === (byFact.get(expected) as SetFact).group
      const nowRight = qs.filter(q => right(answers.get(q.id)?.now, q.expected))
      const thenRight = asOfQs.filter(q => right(answers.get(q.id)?.then, q.expectedAsOf as string))
      bySplit[s] = {
        mergePrecision: ms.length === 0 ? null : round(rightMerges.length / ms.length, 3),
        mergeRecall: pairs === 0 ? null : round(collapsed / pairs, 3),
        merges: ms.length,
        wrongMerges: ms.length - rightMerges.length,
        duplicatePairs: pairs,
        duplicatePairsCollapsed: collapsed,
        currentTop1: round(nowRight.length / qs.length, 3),
        asOfTop1: asOfQs.length === 0 ? null : round(thenRight.length / asOfQs.length, 3),
        queries: qs.length,
        asOfQueries: asOfQs.length,
        contradictionRecall: labeled.length === 0 ? null : round(applied.length / labeled.length, 3),
        contradictions: labeled.length,
        contradictionsApplied: applied.length,
        invalidations: invs.length,
        wronglyInvalidated: wrong.length
      }
    }
    const show = (f: SetFact | undefined): string => f === undefined ? '(nothing)' : `${f.id} ${f.content}`
    const misses = {
      currentMisses: set.queries.filter(q => answers.get(q.id)?.now?.group !== (byFact.get(q.expected) as SetFact).group).map(q => `${q.id} ${q.text} -> ${show(answers.get(q.id)?.now)}`),
      asOfMisses: set.queries.filter(q => q.asOf !== undefined && answers.get(q.id)?.then?.group !== (byFact.get(q.expectedAsOf as string) as SetFact).group).map(q => `${q.id} ${q.text} @${(q.asOf as string).slice(0, 10)} -> ${show(answers.get(q.id)?.then)}`)
    }
    if (mode === 'labels') {
      const top1 = Object.fromEntries(SPLITS.map(s => {
        const { currentTop1, asOfTop1 } = bySplit[s] as { currentTop1: number, asOfTop1: number }
        return [s, { currentTop1, asOfTop1 }]
      }))
      return { ...top1, recallSeconds: round(recallSeconds, 2), ...misses }
    }
    return {
      ...bySplit,
      rememberSeconds: round(rememberSeconds, 2),
      consolidateSeconds: round(consolidateSeconds, 2),
      recallSeconds: round(recallSeconds, 2),
      examined: result.examined,
      // what went wrong, for reading the numbers
      wrongMerges: merges.filter(m => m.into.group !== m.from.group).map(m => `${show(m.from)} -> ${show(m.into)}`),
      wrongInvalidations: invalidations.filter(i => !replacesTransitively(i.by.group, i.old.group)).map(i => `${show(i.old)} <- ${show(i.by)}`),
      missedContradictions: set.facts.filter(f => f.replaces !== undefined && !invalidations.some(i => i.old.group === (byFact.get(f.replaces as string) as SetFact).group && i.by.group === f.group)).map(f => `${f.id}>${f.replaces as string}`),
      ...misses
    }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function quality (): Promise<Record<string, unknown>> {
  const set = loadSet()
  const groups = new Map<string, number>()
  for (const f of set.facts) groups.set(f.group, (groups.get(f.group) ?? 0) + 1)
  return {
    set: `${set.entities.length} entities (${set.entities.filter(e => e.split === 'dev').length} dev, ${set.entities.filter(e => e.split === 'test').length} test), ${set.facts.length} facts, ${[...groups.values()].filter(n => n > 1).length} duplicate groups, ${set.facts.filter(f => f.replaces !== undefined).length} replacements, ${set.facts.filter(f => f.multiValued === true).length} multi-valued facts, ${set.queries.length} queries (${set.queries.filter(q => q.asOf !== undefined).length} with asOf)`,
    words: await qualityMode(set, 'words'),
    attribute: await qualityMode(set, 'attribute'),
    labels: await qualityMode(set, 'labels')
  }
}

// ---------------------------------------------------------------------------------------------
// synthetic memories for the speed parts

const FIRST = ['Ada', 'Bruno', 'Chiara', 'Dev', 'Eva', 'Farid', 'Gina', 'Hugo', 'Iris', 'Jamal', 'Kira', 'Luis', 'Mona', 'Nils', 'Olga', 'Paulo', 'Quinn', 'Rosa', 'Sven', 'Tara', 'Umar', 'Vera', 'Wim', 'Xenia', 'Yara', 'Zane', 'Anouk', 'Boris', 'Cleo', 'Dario', 'Elif', 'Femi', 'Greg', 'Hana', 'Ivo', 'Jana', 'Kofi', 'Lena', 'Marco', 'Nora', 'Otto', 'Petra', 'Raj', 'Sara', 'Timo', 'Una', 'Viktor', 'Wen', 'Yusuf', 'Zofia',
  'Alma', 'Basil', 'Carmen', 'Dafne', 'Emil', 'Flora', 'Goran', 'Hedda', 'Idris', 'Juno', 'Karim', 'Liv', 'Matteo', 'Nadine', 'Oskar', 'Pia', 'Rami', 'Selma', 'Tobias', 'Ulla', 'Valentin', 'Wanda', 'Yves', 'Zeynep', 'Aiden', 'Bianca', 'Cyril', 'Dora', 'Enzo', 'Fatima', 'Gustav', 'Helga', 'Ilya', 'Jonah', 'Kamala', 'Leandro', 'Maren', 'Noor', 'Orla', 'Pavel', 'Renata', 'Stellan', 'Thea', 'Uriel', 'Vesna', 'Wilhelm', 'Ximena', 'Yosef', 'Zara', 'Arvid']
const LAST = ['Silva', 'Novak', 'Berg', 'Okafor', 'Rossi', 'Kowalski', 'Tanaka', 'Meyer', 'Haddad', 'Larsen', 'Costa', 'Dubois', 'Ivanova', 'Jensen', 'Khan', 'Lopez', 'Moreau', 'Nakamura', 'Olsen', 'Petrov', 'Quint', 'Reyes', 'Schmidt', 'Torres', 'Ueda', 'Varga', 'Weber', 'Xu', 'Yilmaz', 'Zhou', 'Abe', 'Brandt', 'Cruz', 'Diaz', 'Eriksen', 'Fischer', 'Garcia', 'Horvat', 'Ito', 'Jovanovic', 'Kim', 'Lindqvist', 'Mendes', 'Nieminen', 'Ortiz', 'Park', 'Ramos', 'Sato', 'Tran', 'Vogel',
  'Achterberg', 'Bakker', 'Castillo', 'Dimitrov', 'Engel', 'Ferreira', 'Gallo', 'Hansen', 'Iglesias', 'Jung', 'Kaplan', 'Lund', 'Marino', 'Nowak', 'Oyelaran', 'Popescu', 'Quaresma', 'Richter', 'Sandoval', 'Toth', 'Uysal', 'Vidal', 'Wagner', 'Yamada', 'Zielinski', 'Almeida', 'Bauer', 'Carvalho', 'Dalton', 'Esposito', 'Fontaine', 'Greco', 'Holm', 'Ibrahim', 'Janssen', 'Kovac', 'Laine', 'Mazur', 'Nordin', 'Ozturk', 'Pereira', 'Rahman', 'Sorensen', 'Takahashi', 'Urquhart', 'Vargas', 'Walsh', 'Yoon', 'Zamora', 'Aydin']
const CITIES = ['Porto', 'Lyon', 'Graz', 'Turin', 'Leeds', 'Cork', 'Bergen', 'Gdansk', 'Malaga', 'Ghent', 'Aarhus', 'Brno', 'Bologna', 'Tartu', 'Kaunas', 'Utrecht', 'Bilbao', 'Nantes', 'Leipzig', 'Tampere']
const COMPANIES = ['Northwind', 'Globex', 'Initech', 'Umbrella Foods', 'Stark Tools', 'Wayne Freight', 'Acme Labs', 'Hooli', 'Vandelay Imports', 'Soylent Farms']
const THINGS = ['jazz', 'hiking', 'chess', 'sushi', 'the cello', 'gardening', 'photography', 'climbing', 'pottery', 'cycling', 'board games', 'baking', 'sailing', 'poetry', 'tennis']
const PETS = ['a cat', 'a dog', 'two rabbits', 'a parrot', 'a tortoise', 'goldfish', 'a hamster']
const LANGS = ['French', 'German', 'Spanish', 'Italian', 'Polish', 'Japanese', 'Arabic', 'Dutch', 'Swahili', 'Korean']
const ROLES = ['nurse', 'accountant', 'data engineer', 'teacher', 'product manager', 'designer', 'electrician', 'lawyer', 'chef', 'pharmacist']

const nameOf = (i: number): string => `${FIRST[i % FIRST.length] as string} ${LAST[Math.floor(i / FIRST.length) % LAST.length] as string}${i >= FIRST.length * LAST.length ? ` ${Math.floor(i / (FIRST.length * LAST.length)) + 1}` : ''}`
const pick = <T>(list: readonly T[], n: number): T => list[n % list.length] as T

/** The j-th fact (0..9) about entity i; j = 0 is a home that j = 9 replaced. */
function syntheticFact (i: number, j: number): string {
  const n = nameOf(i)
  switch (j) {
    case 0: return `${n} lives in ${pick(CITIES, i * 7 + 3)}.`
    case 1: return `${n} works at ${pick(COMPANIES, i * 3)}.`
    case 2: return `${n} is a ${pick(ROLES, i * 5 + 1)}.`
    case 3: return `${n} likes ${pick(THINGS, i)}.`
    case 4: return `${n} enjoys ${pick(THINGS, i * 11 + 4)} at weekends.`
    case 5: return `${n} has ${pick(PETS, i * 13)}.`
    case 6: return `${n} speaks ${pick(LANGS, i * 17 + 2)}.`
    case 7: return `${n}'s phone number is ${String(600_000_000 + ((i * 7919) % 99_999_999))}.`
    case 8: return `${n}'s favourite colour is ${pick(['blue', 'green', 'red', 'yellow', 'purple', 'orange', 'teal'], i * 19)}.`
    default: return `${n} moved to ${pick(CITIES, i * 7 + 9)}.`
  }
}
const QUESTIONS = [
  (n: string) => `Where does ${n} live?`,
  (n: string) => `Which company does ${n} work for?`,
  (n: string) => `What does ${n} do for a living?`,
  (n: string) => `What pet does ${n} have?`,
  (n: string) => `What is ${n}'s phone number?`,
  (n: string) => `Which languages does ${n} speak?`
]

/** A cheap, deterministic bag-of-words embedder: two signed hash buckets per word (FNV-1a). */
function cheapEmbedder (dims: number): Embedder {
  const fnv = (s: string, seed: number): number => {
    let h = (0x811c9dc5 ^ seed) >>> 0
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
    return h
  }
  return {
    id: `bench-hash-${dims}`,
    dims,
    async embed (texts: readonly string[]): Promise<Float32Array[]> {
      return texts.map(t => {
        const v = new Float32Array(dims)
        for (const w of t.toLowerCase().match(/[a-z0-9]+/g) ?? []) {
          for (let s = 0; s < 2; s++) {
            const h = fnv(w, s)
            v[h % dims] = (v[h % dims] as number) + ((h >>> 31) === 1 ? 1 : -1)
          }
        }
        return v
      })
    }
  }
}

/** The stored fields `remember` writes for knowledge (see node/memory/memory.ts). */
function knowledgeDoc (content: string, entity: string, validFrom: string, extra: Record<string, string> = {}): Record<string, unknown> {
  const normal = content.toLowerCase().replace(/\s+/g, ' ').replace(/[.!?\s]+$/, '').trim()
  const hash = createHash('sha256').update(['knowledge', normal, entity, ''].join('\u0000')).digest('hex').slice(0, 32)
  return { kind: 'knowledge', content, entities: [entity], provenance: [], recordedAt: validFrom, validFrom, hash, settled: true, ...extra }
}

async function timedRecalls (node: PeakNode, entities: number, count: number, options: { asOf?: string } = {}): Promise<number[]> {
  const times: number[] = []
  for (let r = 0; r < count; r++) {
    const i = (r * 7919 + 13) % entities
    const q = (QUESTIONS[r % QUESTIONS.length] as (n: string) => string)(nameOf(i))
    const t = performance.now()
    await node.memory.recall(q, options)
    times.push(performance.now() - t)
  }
  return times
}

// ---------------------------------------------------------------------------------------------
// speed (a): recall over many memories, cheap embedder

async function recallAtScale (): Promise<Record<string, unknown>> {
  const dir = tempDir('recall')
  const node = await PeakNode.open({ dir, embedder: cheapEmbedder(512), backgroundIndexing: false })
  try {
    const knowledge = knowledgeOf(node)
    const entities = Math.max(1, Math.ceil(MEMORIES / 10))
    const base = Date.parse('2024-01-01T00:00:00Z')
    let t = performance.now()
    let batch: Array<Record<string, unknown>> = []
    let written = 0
    const day = 86_400_000
    for (let i = 0; i < entities && written < MEMORIES; i++) {
      const moved = new Date(base + 60 * day + i * 1000).toISOString()
      for (let j = 0; j < 10 && written < MEMORIES; j++) {
        // j = 0: the first home, no longer valid since the move (j = 9) replaced it
        const validFrom = j === 0 ? new Date(base + i * 1000).toISOString() : j === 9 ? moved : new Date(base + 30 * day + i * 1000).toISOString()
        const extra: Record<string, string> = j === 0 ? { invalidFrom: moved, invalidatedBy: `m${i}-9` } : {}
        batch.push({ _id: `m${i}-${j}`, ...knowledgeDoc(syntheticFact(i, j), nameOf(i).toLowerCase(), validFrom, extra) })
        written++
      }
      if (batch.length >= 5000) { await knowledge.putMany(batch); batch = [] }
    }
    if (batch.length > 0) await knowledge.putMany(batch)
    const fillSeconds = (performance.now() - t) / 1000
    t = performance.now()
    await knowledge.indexed()
    const indexSeconds = (performance.now() - t) / 1000
    t = performance.now()
    await node.memory.recall(`Where does ${nameOf(1)} live?`) // starts building the in-memory vector indexes
    await node.ann.settled()
    const annBuildSeconds = (performance.now() - t) / 1000
    // warm-up: every kind of question, about people the timed ones do not ask about
    for (let r = 0; r < 30; r++) await node.memory.recall((QUESTIONS[r % QUESTIONS.length] as (n: string) => string)(nameOf((r * 31 + 5) % entities)))
    const k10 = await timedRecalls(node, entities, 60)
    const asOf = await timedRecalls(node, entities, 60, { asOf: new Date(base + 45 * day).toISOString() })
    // a sanity check (the cheap embedder ranks poorly): is the top hit about the person asked about?
    let aboutRight = 0
    const checks = 20
    for (let r = 0; r < checks; r++) {
      const i = (r * 104_729 + 7) % entities
      const [hit] = await node.memory.recall(`Where does ${nameOf(i)} live?`, { k: 1 })
      if (hit?.memory.entities.includes(nameOf(i).toLowerCase()) === true) aboutRight++
    }
    // writing into the large memory: 50 moves of known people, then one consolidation
    const rememberTimes: number[] = []
    for (let r = 0; r < 50; r++) {
      const i = (r * 7919 + 11) % entities
      t = performance.now()
      await node.memory.remember(`${nameOf(i)} moved to ${pick(CITIES, i * 7 + 9 + r + 1)} last month.`, { kind: 'knowledge', entities: [nameOf(i)], validFrom: new Date(base + 90 * day + r * 1000).toISOString() })
      rememberTimes.push(performance.now() - t)
    }
    t = performance.now()
    const consolidated = await node.memory.consolidate()
    const consolidateSeconds = (performance.now() - t) / 1000
    return {
      memories: written,
      embedder: 'bench-hash-512 (cheap bag-of-words, 512 dims): not the model; the query embedding is ~free here',
      fillSeconds: round(fillSeconds, 2),
      indexSeconds: round(indexSeconds, 2),
      annBuildSeconds: round(annBuildSeconds, 2),
      ann: node.ann.status().filter(a => a.collection === '_memory').map(a => ({ vectors: a.vectors, search: a.search, graphRecall: a.recall === undefined ? null : round(a.recall, 3) })),
      recallMs: ms(k10),
      recallAsOfMs: ms(asOf),
      recalls: k10.length + asOf.length,
      topHitAboutTheEntity: round(aboutRight / checks, 3),
      rememberKnowledgeMs: ms(rememberTimes),
      consolidate50Seconds: round(consolidateSeconds, 2),
      consolidate50: { merges: consolidated.merges.length, invalidations: consolidated.invalidations.length, examined: consolidated.examined },
      peakRssMb: peakRssMb()
    }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// speed (a'): the real embedder

async function realEmbedder (): Promise<Record<string, unknown>> {
  const dir = tempDir('real')
  const node = await PeakNode.open({ dir, backgroundIndexing: false })
  try {
    const embedder = await node.indexer.embedder()
    await embedder.embed(['load the model'])
    const embedTimes: number[] = []
    for (let r = 0; r < 100; r++) {
      const q = (QUESTIONS[r % QUESTIONS.length] as (n: string) => string)(nameOf(r * 37))
      const t = performance.now()
      await embedder.embed([q])
      embedTimes.push(performance.now() - t)
    }
    const entities = Math.max(1, Math.ceil(MEMORIES_REAL / 10))
    const base = Date.parse('2024-01-01T00:00:00Z')
    let t = performance.now()
    let n = 0
    for (let i = 0; i < entities && n < MEMORIES_REAL; i++) {
      for (let j = 0; j < 10 && n < MEMORIES_REAL; j++) {
        await node.memory.remember(syntheticFact(i, j), { kind: 'knowledge', entities: [nameOf(i)], validFrom: new Date(base + (j === 9 ? 60 : j === 0 ? 0 : 30) * 86_400_000 + i * 1000).toISOString() })
        n++
      }
    }
    const rememberSeconds = (performance.now() - t) / 1000
    t = performance.now()
    await knowledgeOf(node).indexed()
    const embedSeconds = (performance.now() - t) / 1000
    t = performance.now()
    await node.memory.recall(`Where does ${nameOf(1)} live?`)
    await node.ann.settled()
    const annBuildSeconds = (performance.now() - t) / 1000
    for (let r = 0; r < 10; r++) await node.memory.recall(`What pet does ${nameOf(r * 31)} have?`)
    const k10 = await timedRecalls(node, entities, 200)
    return {
      embedder: embedder.id,
      queryEmbeddingMs: ms(embedTimes),
      memories: n,
      rememberSeconds: round(rememberSeconds, 2),
      embedSeconds: round(embedSeconds, 2),
      fillSeconds: round(rememberSeconds + embedSeconds, 2),
      annBuildSeconds: round(annBuildSeconds, 2),
      ann: node.ann.status().filter(a => a.collection === '_memory').map(a => ({ vectors: a.vectors, search: a.search, graphRecall: a.recall === undefined ? null : round(a.recall, 3) })),
      recallMs: ms(k10),
      peakRssMb: peakRssMb()
    }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// speed (b): consolidating new context, real embedder

async function consolidation (): Promise<Record<string, unknown>> {
  const dir = tempDir('consolidate')
  const node = await PeakNode.open({ dir, backgroundIndexing: false })
  try {
    await (await node.indexer.embedder()).embed(['load the model'])
    const sessions = 5
    const entities = Math.max(1, Math.ceil(CONTEXT / 8))
    const ids: string[] = []
    let t = performance.now()
    let repeated = 0
    for (let c = 0; c < CONTEXT; c++) {
      const i = c % entities
      const j = Math.floor(c / entities) % 9
      const scope = { agent: 'assistant', session: `s${c % sessions}` }
      ids.push(await node.memory.remember(syntheticFact(i, j), { scope, entities: [nameOf(i)] }))
      // every 10th item is said again in the same session
      if (c % 10 === 0) { await node.memory.remember(syntheticFact(i, j), { scope, entities: [nameOf(i)] }); repeated++ }
    }
    const rememberSeconds = (performance.now() - t) / 1000
    t = performance.now()
    const recalls = Math.ceil(CONTEXT / 20)
    for (let r = 0; r < recalls; r++) await node.memory.recall((QUESTIONS[r % QUESTIONS.length] as (n: string) => string)(nameOf((r * 7) % entities)), { k: 1, kinds: ['context'] })
    const recallSeconds = (performance.now() - t) / 1000
    t = performance.now()
    const result = await node.memory.consolidate()
    const consolidateSeconds = (performance.now() - t) / 1000
    return {
      contextItems: CONTEXT,
      sessions,
      repeatedItems: repeated,
      recalls,
      rememberSeconds: round(rememberSeconds, 2),
      recallSeconds: round(recallSeconds, 2),
      consolidateSeconds: round(consolidateSeconds, 2),
      promotions: result.promotions.length,
      merges: result.merges.length,
      invalidations: result.invalidations.length,
      examined: result.examined,
      peakRssMb: peakRssMb()
    }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------
// speed (c): the write path

async function writes (): Promise<Record<string, unknown>> {
  const dir = tempDir('writes')
  try {
    const doc = (i: number): Record<string, unknown> => knowledgeDoc(syntheticFact(i, i % 9), nameOf(i).toLowerCase(), new Date(Date.parse('2024-01-01T00:00:00Z') + i * 1000).toISOString())
    const rawPerSec = await rawAutocommitPerSec(join(dir, 'raw.sqlite'), WRITES, i => ({ _id: `r${i}`, ...doc(i) }))

    // the storage and log path only: no background indexing (its queue is filled), a cheap embedder
    const node = await PeakNode.open({ dir: join(dir, 'node'), embedder: cheapEmbedder(512), backgroundIndexing: false })
    const plain = node.collection('plain', { embed: false })
    const embedding = node.collection('notes', { embed: ['content'] })
    const totals = { put: 0, putEmbedding: 0, knowledge: 0, context: 0 }
    const ROUND = 250
    let t: number
    // rounds alternate between the four, so that warm-up and a growing database weigh on all alike
    for (let r = 0; r < WRITES; r += ROUND) {
      const end = Math.min(WRITES, r + ROUND)
      t = performance.now()
      for (let i = r; i < end; i++) await plain.put({ _id: `p${i}`, ...doc(i) })
      totals.put += performance.now() - t
      t = performance.now()
      for (let i = r; i < end; i++) await embedding.put({ _id: `e${i}`, ...doc(i) })
      totals.putEmbedding += performance.now() - t
      t = performance.now()
      for (let i = r; i < end; i++) await node.memory.remember(syntheticFact(i, i % 9), { kind: 'knowledge', entities: [nameOf(i)], validFrom: new Date(Date.parse('2024-01-01T00:00:00Z') + i * 1000).toISOString() })
      totals.knowledge += performance.now() - t
      t = performance.now()
      for (let i = r; i < end; i++) await node.memory.remember(syntheticFact(i, i % 9), { scope: { agent: 'assistant', session: `s${i % 5}` }, entities: [nameOf(i)] })
      totals.context += performance.now() - t
    }
    await node.close()
    const perSec = (total: number): number => round(WRITES / total * 1000, 0)
    return {
      N: WRITES,
      rawAutocommitDocsPerSec: round(rawPerSec, 0),
      putDocsPerSec: perSec(totals.put),
      putEmbeddingCollectionDocsPerSec: perSec(totals.putEmbedding),
      rememberKnowledgePerSec: perSec(totals.knowledge),
      rememberContextPerSec: perSec(totals.context),
      peakRssMb: peakRssMb()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------

const ALL = ['quality', 'recall', 'real', 'consolidate', 'writes']
const parts = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL
for (const p of parts) if (!ALL.includes(p)) throw new Error(`usage: memory.js [${ALL.join('] [')}]`)
const started = performance.now()
const out: Record<string, unknown> = { date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version } }
const seconds: Record<string, number> = {}
const run = async (name: string, label: string, fn: () => Promise<Record<string, unknown>>): Promise<void> => {
  if (!parts.includes(name)) return
  process.stderr.write(`bench memory: ${label}\n`)
  const t = performance.now()
  out[name] = await fn()
  seconds[name] = round((performance.now() - t) / 1000, 1)
}
await run('quality', 'quality on the labeled set, words only and with attributes (default embedder)', quality)
await run('writes', `write path, ${WRITES} of each`, writes)
await run('consolidate', `consolidating ${CONTEXT} context items (default embedder)`, consolidation)
await run('real', `default embedder: query embedding, recall over ${MEMORIES_REAL} memories`, realEmbedder)
await run('recall', `recall over ${MEMORIES} memories (cheap embedder)`, recallAtScale)
out.seconds = { ...seconds, total: round((performance.now() - started) / 1000, 1) }
process.stdout.write(JSON.stringify(out) + '\n')
