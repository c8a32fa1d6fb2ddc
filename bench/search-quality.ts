/**
 * Ranking quality on the labeled set bench/data/ir-eval.json (320 personal notes, 64 queries of
 * four kinds with graded judgments): nDCG@10 of keyword (BM25), vector (the node's embedder) and
 * hybrid fusion at several weightings, overall and per query kind.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PeakNode } from '../node/index.js'
import { round } from './stats.js'

interface EvalSet {
  docs: Array<{ id: string, title: string, body: string }>
  queries: Array<{ id: string, text: string, kind: string, relevant: Record<string, number> }>
}

/** nDCG@k with graded gains (2^rel - 1). */
export function ndcg (ranked: readonly string[], relevant: Record<string, number>, k = 10): number {
  const gain = (r: number): number => 2 ** r - 1
  let dcg = 0
  ranked.slice(0, k).forEach((id, i) => { dcg += gain(relevant[id] ?? 0) / Math.log2(i + 2) })
  const ideal = Object.values(relevant).sort((a, b) => b - a).slice(0, k)
  let idcg = 0
  ideal.forEach((r, i) => { idcg += gain(r) / Math.log2(i + 2) })
  return idcg === 0 ? 0 : dcg / idcg
}

/** Runs the evaluation; `variants` are (label, mode, weights). */
export async function searchQuality (): Promise<Record<string, unknown>> {
  const here = dirname(fileURLToPath(import.meta.url))
  // from bench/ (sources) or dist/bench/ (built)
  const file = [join(here, 'data', 'ir-eval.json'), join(here, '..', '..', 'bench', 'data', 'ir-eval.json')].find(f => existsSync(f)) ?? 'bench/data/ir-eval.json'
  const set = JSON.parse(readFileSync(file, 'utf8')) as EvalSet
  const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-quality-'))
  const node = await PeakNode.open({ dir, backgroundIndexing: false })
  try {
    const c = node.collection('notes')
    await c.putMany(set.docs.map(d => ({ _id: d.id, title: d.title, body: d.body })))
    const t = performance.now()
    await c.indexed()
    const indexSeconds = (performance.now() - t) / 1000
    const variants: Array<[string, 'text' | 'vector' | 'hybrid', { text: number, vector: number } | undefined]> = [
      ['text (BM25)', 'text', undefined],
      ['vector', 'vector', undefined],
      ['hybrid: cosine + keyword relevance (default)', 'hybrid', undefined],
      ['hybrid: cosine + 0.5 x relevance', 'hybrid', { vector: 1, text: 0.5 }],
      ['hybrid: cosine + 2 x relevance', 'hybrid', { vector: 1, text: 2 }]
    ]
    const kinds = [...new Set(set.queries.map(q => q.kind))].sort()
    const rows: Record<string, Record<string, number>> = {}
    for (const [label, mode, weights] of variants) {
      const scores: Record<string, number[]> = { all: [] }
      for (const q of set.queries) {
        const hits = await c.search({ text: q.text, mode, k: 10, ...(weights !== undefined ? { weights } : {}) })
        const s = ndcg(hits.map(h => h.id), q.relevant)
        scores.all?.push(s)
        ;(scores[q.kind] ??= []).push(s)
      }
      rows[label] = Object.fromEntries(['all', ...kinds].map(k => [k, round((scores[k] ?? []).reduce((a, b) => a + b, 0) / Math.max(1, (scores[k] ?? []).length), 3)]))
    }
    return { set: `${set.docs.length} docs, ${set.queries.length} queries (${kinds.map(k => `${set.queries.filter(q => q.kind === k).length} ${k}`).join(', ')})`, embedder: (await node.indexer.embedder()).id, indexSeconds: round(indexSeconds, 2), ndcgAt10: rows }
  } finally {
    await node.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(JSON.stringify(await searchQuality()) + '\n')
}
