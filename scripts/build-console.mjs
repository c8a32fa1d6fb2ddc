// Builds the web console: bundles console/src/main.ts into dist/console/assets/app.js (ESM,
// minified, for browsers; code only one page needs, such as the QR encoder, goes into a
// chunk-*.js loaded on demand), copies the stylesheet and the page, and prints the sizes.
// Type-checking is `tsc -p console/tsconfig.json` (in `npm run lint`); esbuild only strips types.
import { build } from 'esbuild'
import { copyFile, mkdir, readFile, readdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'console')
const out = join(root, 'dist', 'console')
const assets = join(out, 'assets')

await rm(out, { recursive: true, force: true })
await mkdir(assets, { recursive: true })

await build({
  entryPoints: { app: join(src, 'src', 'main.ts') },
  outdir: assets,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  tsconfig: join(src, 'tsconfig.json'),
  logLevel: 'warning'
})
await copyFile(join(src, 'app.css'), join(assets, 'app.css'))
await copyFile(join(src, 'index.html'), join(out, 'index.html'))

const kB = bytes => `${(bytes / 1000).toFixed(1)} kB`
const js = await readFile(join(assets, 'app.js'))
const css = await readFile(join(assets, 'app.css'))
let chunks = 0
for (const name of await readdir(assets)) if (name.startsWith('chunk-')) chunks += (await readFile(join(assets, name))).length
console.log(`console: app.js ${kB(js.length)} (${kB(gzipSync(js).length)} gzip), app.css ${kB(css.length)}${chunks > 0 ? `, on-demand chunks ${kB(chunks)}` : ''}`)
