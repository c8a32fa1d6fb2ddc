/**
 * Temporary directories for tests, removed afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh empty directory under the OS temp dir. */
export function makeTmpDir (prefix = 'peakdb-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

/** Tracks temp dirs and removes them all at once (call `cleanup()` in afterEach). */
export class TmpDirs {
  private readonly dirs: string[] = []
  make (prefix?: string): string {
    const d = makeTmpDir(prefix)
    this.dirs.push(d)
    return d
  }

  cleanup (): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  }
}
