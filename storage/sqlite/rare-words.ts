/**
 * Keyword searches that score only the rows holding one of a query's rare words, when that
 * provably gives the same answer.
 *
 * FTS5 scores every row a query matches, at ~300 ns a row (most of it reading the row's length),
 * so one word in a tenth of a large table ("work", "number") costs more than the rest of a
 * search. The rows holding a rare word are scored exactly as the whole query scores them by
 * `(all words) NOT ((common words) NOT (rare words))`: the words under NOT add nothing to a row
 * they are not in. A row holding only common words scores at most the sum, over those words, of
 * IDF x the most BM25's term-frequency part can give with the most times one row holds the word
 * (from FTS5's vocabulary). When the k-th best row with a rare word scores more than that, no
 * row without one can be among the best k: the caller keeps the pruned answer, else it scores
 * every match as before (the MaxScore idea of Turtle and Flood, on FTS5's own scores). The word
 * counts, the vocabulary and the search are separate reads: a write landing between them can
 * shift the statistics a little, as it shifts any answer read at about that time.
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import { BM25_B, BM25_K1, bm25Idf } from '../provider.js'
import { FTS_TOKENIZE } from './schema.js'
import { ftsMatch, textAverages, type TermCount } from './search-tables.js'

/** Below this many matches in all (counted per word), a keyword search scores every match. */
const PRUNE_MIN_MATCHES = 5000

/** A word is common when it is in this many times more rows than the query's rarer words together. */
const PRUNE_RATIO = 4

/** Stems kept (the tokenizer's answer for a word never changes). */
const STEMS_MAX = 10_000

/**
 * FTS5's vocabulary of the full-text table, on a connection that may create temporary tables
 * (the provider's own): a word's stem, and how often the rows holding it hold it.
 */
export class WordStats {
  private s: { clear: Statement, add: Statement, stems: Statement, term: Statement } | undefined
  /** Word → its one stem (null: the tokenizer makes no single word of it). */
  private readonly stems = new Map<string, string | null>()

  constructor (private readonly db: Db) {}

  /** Per word, the most times one row holds it (an upper bound; undefined when not known). */
  maxFrequencies (words: readonly string[]): Array<number | undefined> {
    const s = this.statements()
    const unknown = words.filter(w => !this.stems.has(w))
    if (unknown.length > 0) {
      if (this.stems.size + unknown.length > STEMS_MAX) this.stems.clear()
      this.db.transaction(() => {
        s.clear.run()
        unknown.forEach((w, i) => s.add.run(i, w))
        const found = new Map<number, string[]>()
        for (const r of s.stems.all() as Array<{ doc: number, term: string }>) found.set(r.doc, [...(found.get(r.doc) ?? []), r.term])
        unknown.forEach((w, i) => { const t = found.get(i); this.stems.set(w, t?.length === 1 ? t[0] as string : null) })
        s.clear.run()
      })()
    }
    return words.map(w => {
      const stem = this.stems.get(w)
      if (stem == null) return undefined
      const row = s.term.get(stem) as { doc: number, cnt: number } | undefined
      // every row holds it once, except that the extra instances could all be in one row
      return row === undefined ? 0 : row.cnt - row.doc + 1
    })
  }

  private statements (): NonNullable<WordStats['s']> {
    if (this.s !== undefined) return this.s
    this.db.exec(`CREATE VIRTUAL TABLE IF NOT EXISTS temp.peak_stem USING fts5(w, tokenize = '${FTS_TOKENIZE}');
      CREATE VIRTUAL TABLE IF NOT EXISTS temp.peak_stem_terms USING fts5vocab(temp, peak_stem, 'instance');
      CREATE VIRTUAL TABLE IF NOT EXISTS temp.peak_text_terms USING fts5vocab(main, fts, 'row');`)
    this.s = {
      clear: this.db.prepare('DELETE FROM temp.peak_stem'),
      add: this.db.prepare('INSERT INTO temp.peak_stem (rowid, w) VALUES (?, ?)'),
      stems: this.db.prepare('SELECT doc, term FROM temp.peak_stem_terms'),
      term: this.db.prepare('SELECT doc, cnt FROM temp.peak_text_terms WHERE term = ?')
    }
    return this.s
  }
}

/**
 * The FTS5 query over the rows holding a rare word of `terms`, and what its k-th best row must
 * score (more than) for its best k to be the whole query's. Undefined when no word is that
 * common, or the words match few rows anyway. `counts`: {@link TEXT_TERM_COUNTS_SQL}'s rows for
 * `terms`; `maxFrequency`: per word, the most times one row holds it (undefined: unbounded).
 */
export function rareWordsQuery (terms: readonly string[], counts: readonly TermCount[], maxFrequency: (words: readonly string[]) => ReadonlyArray<number | undefined>): { match: string, bound: number } | undefined {
  const block = counts[0]?.avg
  if (block == null || terms.length < 2 || counts.length !== terms.length) return undefined
  const byCount = terms.map((t, i) => ({ t, n: (counts[i] as TermCount).n })).sort((a, b) => b.n - a.n)
  let rest = byCount.reduce((sum, w) => sum + w.n, 0)
  if (rest < PRUNE_MIN_MATCHES) return undefined
  // the most words that are each in PRUNE_RATIO times more rows than the others together
  let split = 0
  for (let j = 1; j < byCount.length; j++) {
    const last = (byCount[j - 1] as { n: number }).n
    rest -= last
    if (rest > 0 && last >= PRUNE_RATIO * rest) split = j
  }
  if (split === 0) return undefined
  const { rows, words } = textAverages(block)
  const common = byCount.slice(0, split)
  const most = maxFrequency(common.map(w => w.t))
  const bound = common.reduce((sum, w, i) => sum + bm25Idf(rows, w.n) * frequencyCeiling(most[i], rows > 0 ? words / rows : 0), 0)
  const rare = byCount.slice(split).map(w => w.t)
  return { match: `(${ftsMatch(terms)}) NOT ((${ftsMatch(common.map(w => w.t))}) NOT (${ftsMatch(rare)}))`, bound }
}

/**
 * The most BM25's term-frequency part, tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)), can be
 * for a word held at most `most` times by a row: it grows with tf, and dl is at least tf.
 * Without a known most: k1 + 1 (its limit).
 */
function frequencyCeiling (most: number | undefined, avgdl: number): number {
  if (most === undefined || !(avgdl > 0)) return BM25_K1 + 1
  const tf = Math.max(1, most)
  return tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * tf / avgdl))
}
