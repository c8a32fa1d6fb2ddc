/**
 * Agent memory from outside the process: `peakdb memory …` (with and without a daemon) and the
 * MCP server (`peakdb mcp`), spawned as a child process and driven by the SDK's client.
 */
import assert from 'node:assert/strict'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { BIN, runCli, startDaemon } from './helpers/cli.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { withTimeout } from './helpers/wait-for.js'

const dirs = new TmpDirs()
after(() => dirs.cleanup())

interface Hit { score: number, memory: { id: string, content: string, invalidFrom?: string } }

describe('peakdb memory (CLI)', function () {
  this.timeout(120_000)

  it('adds, recalls (now and as of a time), consolidates, lists, shows history and forgets, with and without a daemon', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir])).code, 0)
    const add = async (...args: string[]): Promise<string> => {
      const r = await runCli(['memory', 'add', ...args, '--dir', dir, '--json'])
      assert.equal(r.code, 0, r.stderr)
      return (JSON.parse(r.stdout) as { id: string }).id
    }
    const lisbon = await add('Ada lives in Lisbon', '--knowledge', '--entity', 'Ada', '--valid-from', '2024-01-01')
    const human = await runCli(['memory', 'add', 'Ada moved to Berlin', '--knowledge', '--entity', 'Ada', '--valid-from', '2025-05-01', '--dir', dir])
    assert.match(human.stdout, /^remembered \w+ \(knowledge, about ada\)/)
    await add('the user prefers metric units', '--agent', 'helper', '--session', 's1', '--ttl', '2h')

    const plan = await runCli(['memory', 'consolidate', '--dry-run', '--dir', dir])
    assert.equal(plan.code, 0, plan.stderr)
    assert.match(plan.stdout, /^would consolidate 2 new fact\(s\) with the rules decider/)
    assert.match(plan.stdout, new RegExp(`retire +${lisbon} \\(valid until 2025-05-01T00:00:00.000Z`))

    const daemon = await startDaemon(['--dir', dir, '--no-dht'])
    try {
      const done = await runCli(['memory', 'consolidate', '--json', '--dir', dir])
      assert.equal(done.code, 0, done.stderr)
      assert.deepEqual((JSON.parse(done.stdout) as { invalidations: Array<{ id: string }> }).invalidations.map(i => i.id), [lisbon])
      const now = JSON.parse((await runCli(['memory', 'recall', 'Where does Ada live?', '--k', '1', '--json', '--dir', dir])).stdout) as Hit[]
      assert.equal(now[0]?.memory.content, 'Ada moved to Berlin')
      const then = await runCli(['memory', 'recall', 'Where does Ada live?', '--k', '1', '--as-of', '2024-06-01', '--dir', dir])
      assert.match(then.stdout, /^ 1\. \d\.\d{3}  \w+  knowledge  Ada lives in Lisbon  \(valid 2024-01-01T00:00:00.000Z until 2025-05-01T00:00:00.000Z\)/)
      const history = await runCli(['memory', 'history', lisbon, '--dir', dir])
      assert.match(history.stdout, /created +remembered: Ada lives in Lisbon\n.*invalidated +contradicted by \w+: valid until 2025-05-01/)
      const list = await runCli(['memory', 'list', '--kind', 'context', '--dir', dir])
      assert.match(list.stdout, /context +the user prefers metric units +\(helper\/s1, expires /)
    } finally {
      assert.equal(await daemon.stop(), 0, daemon.output())
    }
    const forget = await runCli(['memory', 'forget', lisbon, '--dir', dir])
    assert.equal(forget.stdout.trim(), `forgot ${lisbon}`)
    const bad = await runCli(['memory', 'recall', 'x', '--as-of', 'yesterday-ish', '--dir', dir])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--as-of expects an ISO 8601 time/)
    const badKind = await runCli(['memory', 'list', '--kind', 'dreams', '--dir', dir])
    assert.equal(badKind.code, 1)
    assert.match(badKind.stderr, /InvalidOptionError: memoryList: kind/)
  })
})

describe('peakdb mcp', function () {
  this.timeout(120_000)

  it('serves memory, search and documents to an MCP client over stdio', async () => {
    const dir = dirs.make()
    assert.equal((await runCli(['init', '--dir', dir])).code, 0)
    const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp', '--dir', dir], env: { ...process.env, PEAKDB_LOG: 'warn' } as Record<string, string>, stderr: 'pipe' })
    const client = new Client({ name: 'peakdb-test', version: '1.0.0' })
    await withTimeout(client.connect(transport), 30_000, 'the MCP server to initialize')
    try {
      assert.equal(client.getServerVersion()?.name, 'peakdb')
      const { tools } = await client.listTools()
      assert.deepEqual(tools.map(t => t.name).sort(), ['consolidate', 'find', 'forget', 'get', 'memory_history', 'put', 'recall', 'remember', 'search', 'swarm_search'])
      const remember = tools.find(t => t.name === 'remember')
      assert.equal(remember?.inputSchema.type, 'object')
      assert.ok(Object.keys(remember?.inputSchema.properties ?? {}).includes('content'))
      assert.deepEqual(remember?.inputSchema.required, ['content'])

      const text = (r: Awaited<ReturnType<typeof client.callTool>>): string => ((r.content as Array<{ type: string, text: string }>)[0] as { text: string }).text
      const made = await client.callTool({ name: 'remember', arguments: { content: 'The team standup moved to 9:30', kind: 'knowledge', entities: ['standup'] } })
      assert.notEqual(made.isError, true, text(made))
      const id = (JSON.parse(text(made)) as { id: string }).id
      const recalled = await client.callTool({ name: 'recall', arguments: { query: 'When is the standup?', k: 1 } })
      assert.equal((JSON.parse(text(recalled)) as Hit[])[0]?.memory.id, id)

      const put = await client.callTool({ name: 'put', arguments: { collection: 'notes', doc: { _id: 'n1', title: 'Kettle', body: 'serial ZQX-4417' } } })
      assert.notEqual(put.isError, true, text(put))
      const got = await client.callTool({ name: 'get', arguments: { collection: 'notes', id: 'n1' } })
      assert.equal((JSON.parse(text(got)) as { body: string }).body, 'serial ZQX-4417')
      const found = await client.callTool({ name: 'search', arguments: { collection: 'notes', text: 'ZQX-4417', mode: 'text' } })
      assert.equal((JSON.parse(text(found)) as { hits: Array<{ id: string }> }).hits[0]?.id, 'n1')

      const missing = await client.callTool({ name: 'get', arguments: { collection: 'notes', id: 'nope' } })
      assert.equal(missing.isError, true)
      assert.match(text(missing), /^DocumentNotFoundError: document "nope" not found/)
      const badName = await client.callTool({ name: 'find', arguments: { collection: '9bad' } })
      assert.equal(badName.isError, true)
      assert.match(text(badName), /Invalid arguments for tool find: .*at collection/)
      const badArgs = await client.callTool({ name: 'remember', arguments: { content: 42 } })
      assert.equal(badArgs.isError, true, 'the input schema refuses a number for content')
    } finally {
      await client.close()
    }
  })
})
