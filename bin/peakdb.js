#!/usr/bin/env node
// Launcher for the compiled CLI (built by `npm run build`, which `npm ci` runs via `prepare`).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/node/cli/main.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('peakdb: the CLI is not built yet; run `npm run build` (or `npm ci`) in the project folder first\n')
  process.exit(1)
}
const { main } = await import(entry.href)
const code = await main(process.argv)
// let piped output drain, then exit even if an idle keep-alive socket lingers
process.stdout.write('', () => process.exit(code))
