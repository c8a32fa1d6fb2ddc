/**
 * Web console benchmark: the size of what the browser downloads, and how fast the first render
 * with data is, in Debian's headless Chromium against a running daemon.
 *
 *   node dist/bench/console.js [loads]     # default 20 loads of each page
 *
 * "First render" is from navigation start to the page showing the daemon's data: the overview's
 * DeviceId, or the first rows of a 200-document collection. First contentful paint is reported
 * too. Prints one JSON object on stdout.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { chromium } from 'playwright-core'
import { percentile, round } from './stats.js'
import { BIN, benchEnv, startDaemon } from './daemon.js'

const LOADS = Number(process.argv[2] ?? 20)
const GOAL_FIRST_RENDER_MS = 500
const CHROMIUM = process.env.PEAKDB_CHROMIUM ?? '/usr/bin/chromium'
const ASSETS = fileURLToPath(new URL('../console/', import.meta.url))

function sizes (): Record<string, { bytes: number, gzipBytes: number }> {
  const out: Record<string, { bytes: number, gzipBytes: number }> = {}
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir, { withFileTypes: true })) {
      if (name.isDirectory()) walk(join(dir, name.name), `${prefix}${name.name}/`)
      else {
        const body = readFileSync(join(dir, name.name))
        out[prefix + name.name] = { bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length }
      }
    }
  }
  walk(ASSETS, '')
  return out
}

function stats (times: number[]): { p50Ms: number, p95Ms: number, minMs: number } {
  return { p50Ms: round(percentile(times, 50), 1), p95Ms: round(percentile(times, 95), 1), minMs: round(Math.min(...times), 1) }
}

if (!existsSync(join(ASSETS, 'index.html'))) throw new Error('the console is not built: run `npm run build`')
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run \`bash scripts/test-setup.sh\` or set PEAKDB_CHROMIUM`)
const dir = mkdtempSync(join(tmpdir(), 'peakdb-bench-console-'))
try {
  const daemon = await startDaemon(dir)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'] })
  try {
    const docs = Array.from({ length: 200 }, (_, i) => ({ _id: `n${String(i).padStart(3, '0')}`, title: `note ${i}`, body: 'x'.repeat(200) }))
    execFileSync(process.execPath, [BIN, 'put', 'notes', JSON.stringify(docs), '--dir', dir], { env: benchEnv })
    const link = (JSON.parse(execFileSync(process.execPath, [BIN, 'ui', '--json', '--dir', dir], { env: benchEnv, encoding: 'utf8' })) as { url: string }).url
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(link)
    const origin = new URL(link).origin
    const pages = {
      overview: { hash: '#/overview', ready: `[data-testid="device-id"]` },
      collection: { hash: '#/collections/notes', ready: 'tr[data-doc-id]' }
    }
    const firstRender: Record<string, number[]> = { overview: [], collection: [] }
    const fcp: number[] = []
    for (let i = 0; i < LOADS + 1; i++) {
      for (const [name, p] of Object.entries(pages)) {
        await page.goto('about:blank')
        await page.goto(`${origin}/ui/${p.hash}`)
        await page.locator(p.ready).first().waitFor({ timeout: 30_000 })
        // navigation start is the origin of performance.now() in the new document
        const ms = await page.evaluate(() => performance.now())
        const paint = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1)
        if (i === 0) continue // the first load warms the file cache and the daemon
        firstRender[name]?.push(ms)
        if (name === 'overview' && paint >= 0) fcp.push(paint)
      }
    }
    await context.close()
    const overview = stats(firstRender.overview ?? [])
    const collection = stats(firstRender.collection ?? [])
    const files = sizes()
    const result = {
      loads: LOADS,
      chromium: execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
      sizes: files,
      totalBytes: Object.values(files).reduce((n, f) => n + f.bytes, 0),
      totalGzipBytes: Object.values(files).reduce((n, f) => n + f.gzipBytes, 0),
      firstRender: { overview, collection200Docs: collection },
      firstContentfulPaint: stats(fcp),
      goalFirstRenderMs: GOAL_FIRST_RENDER_MS,
      met: Math.max(overview.p50Ms, collection.p50Ms) <= GOAL_FIRST_RENDER_MS
    }
    process.stdout.write(JSON.stringify(result) + '\n')
  } finally {
    await browser.close()
    await daemon.stop()
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
