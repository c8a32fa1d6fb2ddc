/**
 * A headless Chromium for browser tests: Debian's `chromium` (installed by `npm test`'s set-up
 * step), driven by playwright-core. Nothing downloads a browser. Flags keep it off the network
 * beyond the pages it is sent to.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'

/** The Chromium binary: `$PEAKDB_CHROMIUM`, else Debian's. */
export const CHROMIUM = process.env.PEAKDB_CHROMIUM ?? '/usr/bin/chromium'

/** Where browser tests save screenshots (gitignored). */
export const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))

/** Launches the system Chromium headless; fails loudly when it is missing. */
export async function launchBrowser (): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run \`bash scripts/test-setup.sh\` (npm test runs it) or set PEAKDB_CHROMIUM`)
  mkdirSync(ARTIFACTS, { recursive: true })
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']
  })
}
