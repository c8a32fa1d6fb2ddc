/**
 * Search quality on public retrieval test collections, none of them used to tune anything:
 * Cranfield (aeronautics: 1,400 abstracts, 225 queries, graded judgments), CACM (computer
 * science: 3,204 titles and abstracts, 64 queries, 52 with judgments) and CISI (library and
 * information science: 1,460 abstracts, 112 queries, 76 with judgments). The data is not in the
 * repository: download the collections from the Glasgow IR group's test collection page
 * (http://ir.dcs.gla.ac.uk/resources/test_collections/: cran.tar.gz, cacm.tar.gz, cisi.tar.gz),
 * unpack them into one folder, and convert (file names in either case):
 *
 *   node dist/bench/ir-sets.js convert <folder>   # writes bench/data/external/<set>.json
 *   node dist/bench/ir-sets.js eval [cranfield] [cacm] [cisi] [own]
 *   node dist/bench/ir-sets.js dump <set>...   # raw lists for trying rankings offline
 *
 * `eval` indexes each converted set in a fresh node with the default embedder and runs every
 * query through the public API in each mode (text, vector, hybrid), reporting nDCG@10,
 * Recall@100 and query time (k = 100), plus a paired randomization test of hybrid against the
 * better of text and vector. Prints one JSON object on stdout. With BENCH_STORAGE set to a
 * postgres:// URL of an empty database, the nodes store and search on PostgreSQL.
 */
import '../node/polyfills.js'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { crc32 } from 'node:zlib'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ftsTerms } from '../node/embedding/text.js'
import { PeakNode } from '../node/index.js'
import { ndcg } from './search-quality.js'
import { percentile, round } from './stats.js'

interface EvalSet {
  name: string
  source: string
  docs: Array<{ id: string, title: string, body: string }>
  queries: Array<{ id: string, text: string, kind: string, relevant: Record<string, number> }>
}

const here = dirname(fileURLToPath(import.meta.url))
const OUT = [join(here, 'data'), join(here, '..', '..', 'bench', 'data')].find(d => existsSync(join(d, 'ir-eval.json'))) ?? join('bench', 'data')
const EXTERNAL = join(OUT, 'external')

/** Records of a SMART-format file: `.I <id>` then fields `.X` each followed by its lines. */
function smartRecords (text: string): Array<{ id: string, fields: Record<string, string> }> {
  const out: Array<{ id: string, fields: Record<string, string> }> = []
  let field = ''
  for (const line of text.split(/\r?\n/)) {
    const head = /^\.([A-Z])\s*(.*)$/.exec(line)
    if (head !== null && head[1] === 'I') {
      out.push({ id: (head[2] ?? '').trim(), fields: {} })
      field = ''
    } else if (head !== null) {
      field = head[1] as string
    } else {
      const rec = out[out.length - 1]
      if (rec !== undefined && field !== '') rec.fields[field] = `${rec.fields[field] ?? ''} ${line}`
    }
  }
  return out
}

const clean = (s: string | undefined): string => (s ?? '').replace(/\s+/g, ' ').replace(/ ([.,;:])/g, '$1').trim()

function cranfield (dir: string): EvalSet {
  const docs = smartRecords(readFileSync(join(dir, 'cran.all.1400'), 'utf8')).map(r => ({ id: String(Number(r.id)), title: clean(r.fields.T), body: clean(r.fields.W) }))
  // the judgments number the queries 1..225 in file order (the file's own ids skip numbers)
  const texts = smartRecords(readFileSync(join(dir, 'cran.qry'), 'utf8')).map(r => clean(r.fields.W))
  const relevant = new Map<number, Record<string, number>>()
  for (const line of readFileSync(join(dir, 'cranqrel'), 'utf8').split('\n')) {
    const [q, d, code] = line.trim().split(/\s+/).map(Number) as [number, number, number]
    // Cleverdon's codes: 1 a complete answer ... 4 of minimum interest; -1 no judgment
    if (!Number.isInteger(q) || !(code >= 1 && code <= 4)) continue
    let r = relevant.get(q)
    if (r === undefined) relevant.set(q, r = {})
    r[String(d)] = 5 - code
  }
  const queries = texts.map((text, i) => ({ id: String(i + 1), text, kind: 'all', relevant: relevant.get(i + 1) ?? {} })).filter(q => Object.keys(q.relevant).length > 0)
  return { name: 'cranfield', source: 'Cranfield 1400 (ir.dcs.gla.ac.uk cran.tar.gz); gains 4..1 from relevance codes 1..4', docs, queries }
}

function cacm (dir: string): EvalSet {
  const docs = smartRecords(readFileSync(join(dir, 'cacm.all'), 'utf8')).map(r => ({ id: String(Number(r.id)), title: clean(r.fields.T), body: clean(r.fields.W) }))
  const relevant = new Map<number, Record<string, number>>()
  for (const line of readFileSync(join(dir, 'qrels.text'), 'utf8').split('\n')) {
    const [q, d] = line.trim().split(/\s+/).map(Number) as [number, number]
    if (!Number.isInteger(q) || !Number.isInteger(d)) continue
    let r = relevant.get(q)
    if (r === undefined) relevant.set(q, r = {})
    r[String(d)] = 1
  }
  const queries = smartRecords(readFileSync(join(dir, 'query.text'), 'utf8'))
    .map(r => ({ id: String(Number(r.id)), text: clean(r.fields.W), kind: 'all', relevant: relevant.get(Number(r.id)) ?? {} }))
    .filter(q => Object.keys(q.relevant).length > 0)
  return { name: 'cacm', source: 'CACM (ir.dcs.gla.ac.uk cacm.tar.gz); binary judgments', docs, queries }
}

function cisi (dir: string): EvalSet {
  const file = (name: string): string => readFileSync(join(dir, [name, name.toUpperCase()].find(f => existsSync(join(dir, f))) ?? name), 'utf8')
  const docs = smartRecords(file('cisi.all')).map(r => ({ id: String(Number(r.id)), title: clean(r.fields.T), body: clean(r.fields.W) }))
  const relevant = new Map<number, Record<string, number>>()
  for (const line of file('cisi.rel').split('\n')) {
    const [q, d] = line.trim().split(/\s+/).map(Number) as [number, number]
    if (!Number.isInteger(q) || !Number.isInteger(d)) continue
    let r = relevant.get(q)
    if (r === undefined) relevant.set(q, r = {})
    r[String(d)] = 1
  }
  // some queries are a title and an abstract (.T, .W): both are the query
  const queries = smartRecords(file('cisi.qry'))
    .map(r => ({ id: String(Number(r.id)), text: clean(`${r.fields.T ?? ''} ${r.fields.W ?? ''}`), kind: 'all', relevant: relevant.get(Number(r.id)) ?? {} }))
    .filter(q => Object.keys(q.relevant).length > 0)
  return { name: 'cisi', source: 'CISI (ir.dcs.gla.ac.uk cisi.tar.gz); library and information science; binary judgments', docs, queries }
}

const CONVERTERS: Record<string, { files: string[], convert: (dir: string) => EvalSet }> = {
  cranfield: { files: ['cran.all.1400', 'cran.qry', 'cranqrel'], convert: cranfield },
  cacm: { files: ['cacm.all', 'query.text', 'qrels.text'], convert: cacm },
  cisi: { files: ['cisi.all', 'cisi.qry', 'cisi.rel'], convert: cisi }
}

function convertAll (dir: string): Record<string, unknown> {
  mkdirSync(EXTERNAL, { recursive: true })
  const written: Record<string, unknown> = {}
  for (const [name, c] of Object.entries(CONVERTERS)) {
    if (!c.files.every(f => existsSync(join(dir, f)) || existsSync(join(dir, f.toUpperCase())))) {
      written[name] = `skipped: needs ${c.files.join(', ')} in ${dir}`
      continue
    }
    const set = c.convert(dir)
    writeFileSync(join(EXTERNAL, `${name}.json`), JSON.stringify(set))
    written[name] = { docs: set.docs.length, queries: set.queries.length, file: join(EXTERNAL, `${name}.json`) }
  }
  return written
}

function recallAt (ranked: readonly string[], relevant: Record<string, number>, k: number): number {
  const rel = Object.keys(relevant).filter(id => (relevant[id] ?? 0) > 0)
  if (rel.length === 0) return 0
  const top = new Set(ranked.slice(0, k))
  return rel.filter(id => top.has(id)).length / rel.length
}

/** Two-sided paired randomization test of mean(a - b) (sign flips), with a fixed seed. */
function pairedP (a: readonly number[], b: readonly number[], rounds = 10_000): number {
  const d = a.map((x, i) => x - (b[i] as number))
  const observed = Math.abs(d.reduce((s, x) => s + x, 0))
  let seed = 0x2545f491
  const next = (): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 2 ** 32 }
  let extreme = 0
  for (let r = 0; r < rounds; r++) {
    let s = 0
    for (const x of d) s += next() < 0.5 ? -x : x
    if (Math.abs(s) >= observed - 1e-12) extreme++
  }
  return (extreme + 1) / (rounds + 1)
}

interface Ranked { id: string, score: number }

/** Scores scaled to [0, 1] within each list, then `textShare` × text + the rest × vector (absent: 0). */
function minMax (text: readonly Ranked[], vector: readonly Ranked[], textShare: number): string[] {
  const scaled = (list: readonly Ranked[]): Map<string, number> => {
    const lo = Math.min(...list.map(h => h.score))
    const span = Math.max(...list.map(h => h.score)) - lo
    return new Map(list.map(h => [h.id, span > 0 ? (h.score - lo) / span : 1]))
  }
  const t = scaled(text)
  const v = scaled(vector)
  return rank([...new Set([...t.keys(), ...v.keys()])].map(id => ({ id, score: textShare * (t.get(id) ?? 0) + (1 - textShare) * (v.get(id) ?? 0) })))
}

/** Reciprocal rank fusion (k = 60), the text list's share weighted `textWeight` times the vector list's. */
function rrf (text: readonly Ranked[], vector: readonly Ranked[], textWeight: number): string[] {
  const score = new Map<string, number>()
  text.forEach((h, i) => score.set(h.id, (score.get(h.id) ?? 0) + textWeight / (60 + i + 1)))
  vector.forEach((h, i) => score.set(h.id, (score.get(h.id) ?? 0) + 1 / (60 + i + 1)))
  return rank([...score].map(([id, s]) => ({ id, score: s })))
}

/** Documents the first `n` of both lists share. */
function overlap (a: readonly Ranked[], b: readonly Ranked[], n: number): number {
  const top = new Set(a.slice(0, n).map(h => h.id))
  return b.slice(0, n).filter(h => top.has(h.id)).length
}

const rank = (xs: Ranked[]): string[] => xs.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1)).map(x => x.id)

/**
 * How well the encoder knows a collection's language: the share of 40 documents (every n-th)
 * that come first in a vector search for their own longest sentence (6 to 40 words). A
 * candidate signal for weighting hybrid ranking per collection (bench/RESULTS.md).
 */
async function selfRetrieval (c: ReturnType<PeakNode['collection']>, docs: EvalSet['docs']): Promise<number> {
  const longest = (text: string): string | undefined => text.split(/(?<=[.!?])\s+/)
    .map(x => x.trim()).filter(x => { const n = x.split(/\s+/).length; return n >= 6 && n <= 40 })
    .sort((a, b) => b.length - a.length)[0]
  const candidates = docs.map(d => ({ id: d.id, sentence: longest(d.body) })).filter((d): d is { id: string, sentence: string } => d.sentence !== undefined)
  const step = Math.max(1, Math.floor(candidates.length / 40))
  const sample = candidates.filter((_, i) => i % step === 0).slice(0, 40)
  let first = 0
  for (const d of sample) if ((await c.search({ text: d.sentence, mode: 'vector', k: 1 }))[0]?.id === d.id) first++
  return sample.length === 0 ? 0 : first / sample.length
}

async function evaluate (set: EvalSet): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), `peakdb-bench-${set.name}-`))
  // BENCH_STORAGE=postgres://…: the same measures on the PostgreSQL provider (an empty database)
  const storage = process.env.BENCH_STORAGE
  const node = await PeakNode.open({ dir, backgroundIndexing: false, ...(storage !== undefined ? { storage } : {}) })
  try {
    const c = node.collection('docs')
    await c.putMany(set.docs.map(d => ({ _id: d.id, title: d.title, body: d.body })))
    const t = performance.now()
    await c.indexed()
    const indexSeconds = (performance.now() - t) / 1000
    const perMode: Record<string, { ndcg: number[], recall: number[], ms: number[] }> = {}
    // each query's text and vector lists with their scores, for the fusions computed below
    const lists: Record<'text' | 'vector' | 'hybrid', Ranked[][]> = { text: [], vector: [], hybrid: [] }
    for (const mode of ['text', 'vector', 'hybrid'] as const) {
      const m: { ndcg: number[], recall: number[], ms: number[] } = perMode[mode] = { ndcg: [], recall: [], ms: [] }
      for (const q of set.queries) {
        const t0 = performance.now()
        const hits = await c.search({ text: q.text, mode, k: 100 })
        m.ms.push(performance.now() - t0)
        lists[mode].push(hits.map(h => ({ id: h.id, score: h.score })))
        const ids = hits.map(h => h.id)
        m.ndcg.push(ndcg(ids, q.relevant, 10))
        m.recall.push(recallAt(ids, q.relevant, 100))
      }
    }
    // the queries the ranking was chosen on (dev) and those it was not (test): a fixed hash split
    const dev = set.queries.map(q => crc32(`${set.name}:${q.id}`) % 2 === 0)
    const half = (xs: readonly number[], d: boolean): number[] => xs.filter((_, i) => dev[i] === d)
    const k10: number[] = []
    for (const q of set.queries) {
      const t0 = performance.now()
      await c.search({ text: q.text, k: 10 })
      k10.push(performance.now() - t0)
    }
    const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)
    const splits = Object.fromEntries(([['dev', true], ['test', false]] as const).map(([name, d]) => {
      const [t, v, h] = (['text', 'vector', 'hybrid'] as const).map(m => half((perMode[m] as { ndcg: number[] }).ndcg, d)) as [number[], number[], number[]]
      const best = mean(t) >= mean(v) ? t : v
      return [name, { queries: t.length, text: round(mean(t), 3), vector: round(mean(v), 3), hybrid: round(mean(h), 3), hybridMinusBetterPart: round(mean(h) - mean(best), 3), pairedRandomizationP: round(pairedP(h, best), 4) }]
    }))
    const modes = Object.fromEntries(Object.entries(perMode).map(([mode, m]) => [mode, {
      ndcgAt10: round(mean(m.ndcg), 3), recallAt100: round(mean(m.recall), 3), queryMs: { mean: round(mean(m.ms), 1), p95: round(percentile(m.ms, 95), 1) }
    }]))
    const text = perMode.text as { ndcg: number[] }
    const vector = perMode.vector as { ndcg: number[] }
    const hybrid = perMode.hybrid as { ndcg: number[] }
    const better = mean(text.ndcg) >= mean(vector.ndcg) ? 'text' : 'vector'
    const best = better === 'text' ? text.ndcg : vector.ndcg
    const fusionNdcg = (fuse: (t: Ranked[], v: Ranked[], h: Ranked[]) => string[]): number =>
      round(mean(set.queries.map((q, i) => ndcg(fuse(lists.text[i] ?? [], lists.vector[i] ?? [], lists.hybrid[i] ?? []), q.relevant, 10))), 3)
    return {
      set: `${set.docs.length} docs, ${set.queries.length} judged queries`,
      source: set.source,
      embedder: (await node.indexer.embedder()).id,
      indexSeconds: round(indexSeconds, 1),
      indexDocsPerSec: round(set.docs.length / indexSeconds, 1),
      selfRetrievalTop1: round(await selfRetrieval(c, set.docs), 3),
      modes,
      hybridK10Ms: { p50: round(percentile(k10, 50), 1), p95: round(percentile(k10, 95), 1) },
      splits,
      // not in the product: candidates measured on the same lists (k = 100 from each mode)
      offlineFusionsNdcgAt10: {
        minMaxText03: fusionNdcg((t, v) => minMax(t, v, 0.3)),
        minMaxText05: fusionNdcg((t, v) => minMax(t, v, 0.5)),
        minMaxText07: fusionNdcg((t, v) => minMax(t, v, 0.7)),
        rrfEqual: fusionNdcg((t, v) => rrf(t, v, 1)),
        rrfText3: fusionNdcg((t, v) => rrf(t, v, 3)),
        // per query, fixed before measuring: the default where the two top-10 lists share at
        // least 3 documents (the encoder and the words agree), else RRF with text x3
        agreementSwitch: fusionNdcg((t, v, h) => overlap(t, v, 10) >= 3 ? h.map(x => x.id) : rrf(t, v, 3))
      },
      hybridVsBetterPart: {
        better,
        meanDifference: round(mean(hybrid.ndcg) - mean(best), 3),
        worseOn: hybrid.ndcg.filter((x, i) => x < (best[i] as number) - 1e-9).length,
        betterOn: hybrid.ndcg.filter((x, i) => x > (best[i] as number) + 1e-9).length,
        pairedRandomizationP: round(pairedP(hybrid.ndcg, best), 4)
      }
    }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Every query's raw material for trying rankings offline: the keyword list (BM25, top 1,000),
 * the hybrid candidates with their components (keyword relevance, cosine; top 1,000), and each
 * query word's document count. Written to bench/data/external/<set>.lists.json.
 */
async function dumpLists (set: EvalSet): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), `peakdb-bench-${set.name}-`))
  const node = await PeakNode.open({ dir, backgroundIndexing: false })
  try {
    const c = node.collection('docs')
    await c.putMany(set.docs.map(d => ({ _id: d.id, title: d.title, body: d.body })))
    await c.indexed()
    const queries = []
    for (const q of set.queries) {
      const text = await c.search({ text: q.text, mode: 'text', k: 1000 })
      const hybrid = await c.search({ text: q.text, mode: 'hybrid', k: 1000 })
      const words: Record<string, number> = {}
      for (const w of ftsTerms(q.text)) words[w] = (await c.search({ text: w, mode: 'text', k: 1000 })).length
      queries.push({
        id: q.id,
        relevant: q.relevant,
        words,
        text: text.map(h => [h.id, h.score]),
        hybrid: hybrid.map(h => [h.id, h.scores?.text ?? 0, h.scores?.vector ?? 0])
      })
    }
    const file = join(EXTERNAL, `${set.name}.lists.json`)
    writeFileSync(file, JSON.stringify({ docs: set.docs.length, queries }))
    return file
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Evaluates every converted set (or the named ones); sets not converted are reported as missing. */
export async function irSets (names: readonly string[] = Object.keys(CONVERTERS)): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  for (const name of names) {
    // 'own': the project's labeled notes (tuned on), for the same measures side by side
    const file = name === 'own' ? join(OUT, 'ir-eval.json') : join(EXTERNAL, `${name}.json`)
    if (!existsSync(file)) {
      out[name] = `missing: run \`node dist/bench/ir-sets.js convert <folder>\` (see bench/ir-sets.ts)`
      continue
    }
    process.stderr.write(`bench: ${name}\n`)
    out[name] = await evaluate({ ...JSON.parse(readFileSync(file, 'utf8')) as EvalSet, name })
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...rest] = process.argv.slice(2)
  if (cmd === 'convert' && rest[0] !== undefined) process.stdout.write(JSON.stringify(convertAll(rest[0])) + '\n')
  else if (cmd === 'dump') {
    for (const name of rest) {
      const file = name === 'own' ? join(OUT, 'ir-eval.json') : join(EXTERNAL, `${name}.json`)
      process.stdout.write(await dumpLists({ ...JSON.parse(readFileSync(file, 'utf8')) as EvalSet, name }) + '\n')
    }
  } else if (cmd === 'eval') process.stdout.write(JSON.stringify(await irSets(rest.length > 0 ? rest : undefined)) + '\n')
  else {
    process.stderr.write('usage: node dist/bench/ir-sets.js convert <folder> | eval [cranfield] [cacm] [cisi] [own] | dump <set>...\n')
    process.exitCode = 2
  }
}
