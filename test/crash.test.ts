import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { PeakNode } from '../node/index.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { withTimeout } from './helpers/wait-for.js'

describe('crash safety', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()
  afterEach(() => dirs.cleanup())

  it('after SIGKILL mid-stream every resolved write is there, the log verifies and nothing is half-applied', async () => {
    const dir = dirs.make()
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/writer.ts', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    const acknowledged: string[] = []
    let buffer = ''
    const exited = new Promise<NodeJS.Signals | null>(resolve => child.once('exit', (_code, signal) => resolve(signal)))
    await withTimeout(new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8')
        const lines = buffer.split('\n')
        buffer = lines.pop() ?? ''
        acknowledged.push(...lines.filter(l => l.length > 0))
        if (acknowledged.length >= 600) resolve()
      })
    }), 45_000, 'writer to acknowledge 600 documents')
    child.kill('SIGKILL')
    assert.equal(await withTimeout(exited, 10_000, 'writer to exit'), 'SIGKILL')

    const node = await PeakNode.open({ dir, backgroundIndexing: false })
    try {
      const c = node.collection('crash')
      for (const id of acknowledged) assert.notEqual(await c.get(id), null, `acknowledged document ${id} is missing`)
      // batches are all-or-nothing: every b<i>-* group has 0 or 20 documents
      const all = await c.find({ where: { _id: { prefix: 'b' } } })
      const groups = new Map<string, number>()
      for (const d of all) groups.set(d._id.split('-')[0] as string, (groups.get(d._id.split('-')[0] as string) ?? 0) + 1)
      for (const [g, n] of groups) assert.equal(n, 20, `batch ${g} is half-applied (${n} of 20)`)
      const report = await node.verify({ rebuild: true })
      assert.equal(report.ok, true, JSON.stringify(report.problems.slice(0, 3)))
      assert.equal(report.stateMatches, true)
    } finally {
      await node.close()
    }
  })
})
