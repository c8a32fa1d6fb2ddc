/**
 * Where PeakDB's package is installed, found from this module's own location, so it works the
 * same from the compiled `dist/` tree and from the TypeScript sources.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

interface PackageInfo { readonly root: string | undefined, readonly version: string }

let cached: PackageInfo | undefined

function find (): PackageInfo {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'package.json')
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'peakdb') return { root: dir, version: pkg.version ?? '0.0.0' }
    }
    dir = dirname(dir)
  }
  return { root: undefined, version: '0.0.0' }
}

/** The folder holding PeakDB's `package.json`, or undefined when it cannot be found. */
export function packageRoot (): string | undefined {
  return (cached ??= find()).root
}

/** PeakDB's version, from its `package.json` ('0.0.0' when it cannot be found). */
export function packageVersion (): string {
  return (cached ??= find()).version
}
