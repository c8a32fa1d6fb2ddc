import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PeakNode } from '../node/index.js'
import { fileText, htmlText } from '../node/files.js'
import { hashEmbedder } from './helpers/embedders.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { runCli, startDaemon } from './helpers/cli.js'
import { waitFor } from './helpers/wait-for.js'
import { rejectsNamed } from './helpers/errors.js'

const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex')

describe('files: folder indexing into a device-local collection', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  let node: PeakNode
  let folder: string

  function write (rel: string, content: string | Buffer): void {
    const p = join(folder, rel)
    mkdirSync(join(p, '..'), { recursive: true })
    writeFileSync(p, content)
  }

  async function paths (): Promise<string[]> {
    return (await node.collection('files').find({ orderBy: 'path' })).map(d => (d.path as string).slice(folder.length + 1))
  }

  let embedder: ReturnType<typeof hashEmbedder>
  beforeEach(async () => {
    folder = dirs.make('peakdb-folder-')
    embedder = hashEmbedder()
    node = await PeakNode.open({ dir: dirs.make(), embedder })
  })
  afterEach(async () => {
    await node.close()
    dirs.cleanup()
  })

  it('indexes text files with their metadata and text, skipping noise, binaries\' text and ignored paths', async () => {
    write('a.txt', 'Quarterly tax return: remember the receipts from the plumber.')
    write('notes/b.md', '# Garden\n\nPlant tomatoes and basil in May.')
    write('site/page.html', '<html><head><script>var hidden = "zzscript"</script><style>p{}</style></head><body><p>Sourdough &amp; rye</p></body></html>')
    write('data.json', '{"kettle": "serial QX-7"}')
    write('img.bin', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 1, 2, 3]))
    write('node_modules/x/index.js', 'module.exports = 1')
    write('.git/config', '[core]')
    write('debug.log', 'noise')
    write('.peakdbignore', '*.log\nsite/private/\n')
    write('site/private/secret.txt', 'secret')
    symlinkSync(join(folder, 'a.txt'), join(folder, 'link.txt'))
    const phases = new Set<string>()
    const entries = (await node.status()).entries
    const r = await node.files.index(folder, { onProgress: p => phases.add(p.phase) })
    assert.deepEqual([r.files, r.added, r.updated, r.removed, r.unchanged, r.errors.length], [5, 5, 0, 0, 0, 0])
    assert.deepEqual([...phases], ['scan', 'files', 'embed'])
    assert.deepEqual(await paths(), ['a.txt', 'data.json', 'img.bin', 'notes/b.md', 'site/page.html'])
    const files = node.collection('files')
    assert.equal(files.local, true)
    const [a] = await files.find({ where: { name: 'a.txt' } })
    assert.equal(a?.hash, sha256('Quarterly tax return: remember the receipts from the plumber.'))
    assert.equal(a?.kind, 'text')
    assert.equal(a?.size, 61)
    const [bin] = await files.find({ where: { name: 'img.bin' } })
    assert.deepEqual([bin?.kind, bin?.text], ['binary', undefined])
    const [html] = await files.find({ where: { ext: '.html' } })
    assert.equal(html?.text, 'Sourdough & rye')
    assert.equal((await files.search({ text: 'tomatoes basil', mode: 'text', k: 1 }))[0]?.doc.name, 'b.md')
    assert.equal((await files.search({ text: 'zzscript', mode: 'text' })).length, 0)
    assert.equal((await node.status()).entries, entries, 'nothing of the folder went into the log')
  })

  it('re-runs incrementally: changed re-read, deleted removed, added added, untouched not read', async () => {
    write('a.txt', 'old words alpha')
    write('b.txt', 'bravo')
    write('c.txt', 'charlie')
    await node.files.index(folder)
    const again = await node.files.index(folder)
    assert.deepEqual([again.added, again.updated, again.removed, again.unchanged, again.read], [0, 0, 0, 3, 0], 'untouched files are not read')
    write('a.txt', 'new words delta and more')
    utimesSync(join(folder, 'a.txt'), new Date(), new Date(Date.now() + 5000))
    rmSync(join(folder, 'b.txt'))
    write('sub/d.txt', 'echo')
    const r = await node.files.index(folder)
    assert.deepEqual([r.files, r.added, r.updated, r.removed, r.unchanged, r.read], [3, 1, 1, 1, 1, 2])
    assert.deepEqual(await paths(), ['a.txt', 'c.txt', 'sub/d.txt'])
    const files = node.collection('files')
    assert.equal((await files.search({ text: 'alpha', mode: 'text' })).length, 0, 'the old text is gone')
    assert.equal((await files.search({ text: 'delta', mode: 'text' }))[0]?.doc.name, 'a.txt')
    assert.equal((await files.search({ text: 'bravo', mode: 'text' })).length, 0, 'the deleted file is gone')
    // touched but not changed: same content hash, no re-embedding
    const before = (await files.find({ where: { name: 'c.txt' } }))[0]
    utimesSync(join(folder, 'c.txt'), new Date(), new Date(Date.now() + 9000))
    const embedded = embedder.texts
    const touched = await node.files.index(folder)
    assert.deepEqual([touched.updated, touched.unchanged, touched.read], [0, 3, 1], 'the touched file is read (hashed), the others not')
    assert.equal(embedder.texts, embedded, 'no re-embedding of unchanged content')
    const after = (await files.find({ where: { name: 'c.txt' } }))[0]
    assert.equal(after?.hash, before?.hash)
    assert.notEqual(after?.mtime, before?.mtime)
  })

  it('watching follows changes', async () => {
    write('a.txt', 'first version')
    const w = node.files.watch(folder)
    try {
      await w.ready
      write('new.txt', 'written while watched: foxtrot')
      await waitFor(async () => (await node.collection('files').search({ text: 'foxtrot', mode: 'text' })).length === 1, { timeoutMs: 15_000, message: 'the new file to be indexed' })
      rmSync(join(folder, 'a.txt'))
      await waitFor(async () => (await paths()).join() === 'new.txt', { timeoutMs: 15_000, message: 'the deleted file to leave the index' })
    } finally {
      w.close()
    }
  })

  it('rejects what is not a folder, and a replicated collection of the same name', async () => {
    await rejectsNamed(() => node.files.index(join(folder, 'missing')), 'InvalidOptionError')
    write('f.txt', 'x')
    await rejectsNamed(() => node.files.index(join(folder, 'f.txt')), 'InvalidOptionError')
    await node.collection('shared').put({ title: 'replicated' })
    await rejectsNamed(() => node.files.index(folder, { collection: 'shared' }), 'InvalidOptionError')
  })

  it('text extraction: HTML without tags or scripts, binaries refused, BOM dropped', () => {
    assert.equal(htmlText('<p>a &lt;b&gt; &#233;t&#xE9;</p><script>x()</script>'), 'a <b> été')
    assert.equal(fileText(Buffer.from([0x61, 0, 0x62]), '.txt'), undefined)
    assert.equal(fileText(Buffer.from([0xff, 0xfe, 0x41]), '.txt'), undefined, 'not UTF-8')
    assert.equal(fileText(Buffer.from('\ufeffhello'), '.md'), 'hello')
  })

  it('CLI with a daemon: index --watch is kept by the daemon, across a restart, until --unwatch', async () => {
    const dir = dirs.make()
    write('one.txt', 'golf hotel')
    let d = await startDaemon(['--dir', dir, '--no-dht'])
    try {
      const r = await runCli(['index', folder, '--watch', '--dir', dir, '--json'], { timeoutMs: 60_000 })
      assert.equal(r.code, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { files: number }).files, 1)
      const found = async (word: string): Promise<boolean> => {
        const s = await runCli(['search', 'files', word, '--mode', 'text', '--json', '--dir', dir])
        return (JSON.parse(s.stdout) as { hits: unknown[] }).hits.length > 0
      }
      write('two.txt', 'india juliet')
      await waitFor(async () => await found('juliet'), { timeoutMs: 20_000, message: 'the daemon to index a new file' })
      assert.equal(await d.stop(), 0)
      write('three.txt', 'kilo lima')
      d = await startDaemon(['--dir', dir, '--no-dht'])
      await waitFor(async () => await found('lima'), { timeoutMs: 20_000, message: 'the restarted daemon to catch up with the folder' })
      const u = await runCli(['index', folder, '--unwatch', '--dir', dir])
      assert.match(u.stdout, /no longer watching/)
      const list = await runCli(['index', folder, '--unwatch', '--dir', dir])
      assert.match(list.stdout, /was not watched/)
    } finally {
      await d.stop()
    }
  })

  it('CLI: peakdb index, then search --swarm shows device and path', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir, '--name', 'laptop', '--json'])).code, 0)
    write('taxes/2025.txt', 'Tax return 2025: receipts for the accountant.')
    write('recipes/bread.md', 'Sourdough bread needs a lively starter.')
    const r = await runCli(['index', folder, '--dir', dir, '--json'], { timeoutMs: 60_000 })
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as { added: number }).added, 2)
    const s = await runCli(['search', 'tax return 2025', '--swarm', '--dir', dir], { timeoutMs: 60_000 })
    assert.equal(s.code, 0, s.stderr)
    const first = s.stdout.split('\n')[0] as string
    assert.match(first, /^ 1\. \d\.\d{3} {2}laptop {2}\S*taxes\/2025\.txt$/)
    assert.match(s.stdout, /devices: laptop \(this device\) ok/)
    const j = await runCli(['search', 'sourdough', '--swarm', '--json', '--dir', dir, '--k', '1'], { timeoutMs: 60_000 })
    const parsed = JSON.parse(j.stdout) as { hits: Array<{ deviceName: string, doc: { name: string } }>, devices: unknown[] }
    assert.deepEqual([parsed.hits[0]?.deviceName, parsed.hits[0]?.doc.name, parsed.devices.length], ['laptop', 'bread.md', 1])
    const help = await runCli(['index', '--help'])
    assert.match(help.stdout, /--watch/)
  })
})
