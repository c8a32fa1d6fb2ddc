/**
 * The web console, end to end: real daemons started through the CLI, Debian's Chromium driven
 * by playwright-core, axe-core on every page. Screenshots land in test/artifacts/console/.
 */
import { strict as assert } from 'node:assert'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer, get as httpGet } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { ApiServer } from '../node/daemon/api-server.js'
import { PeakNode } from '../node/peak-node.js'
import { LOGIN_CODE_TTL_MS } from '../node/daemon/console-server.js'
import { runCli, startDaemon, type Daemon } from './helpers/cli.js'
import { ARTIFACTS, launchBrowser } from './helpers/browser.js'
import { TmpDirs } from './helpers/tmp-dir.js'
import { hashEmbedder } from './helpers/embedders.js'
import { waitFor, withTimeout } from './helpers/wait-for.js'

const SHOTS = join(ARTIFACTS, 'console')
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

async function loginLink (dir: string): Promise<string> {
  const r = await runCli(['ui', '--json', '--dir', dir])
  assert.equal(r.code, 0, r.stderr)
  const { url } = JSON.parse(r.stdout) as { url: string }
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/ui\/#login=[\w-]{43}$/)
  return url
}

/** Fails on accessibility violations axe-core rates serious or critical. */
async function checkA11y (page: Page, what: string): Promise<void> {
  await page.evaluate(axeSource)
  const result = await page.evaluate(async () => await (globalThis as unknown as { axe: { run: (o: unknown) => Promise<{ violations: Array<{ id: string, impact: string, help: string, nodes: Array<{ target: unknown }> }> }> } }).axe.run({ resultTypes: ['violations'] }))
  const bad = result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
  assert.deepEqual(bad.map(v => `${v.id}: ${v.help} (${JSON.stringify(v.nodes.slice(0, 3).map(n => n.target))})`), [], `accessibility of ${what}`)
}

/** The status of a GET sent with another Host header (what a DNS-rebinding page sends). */
async function statusWithHost (url: string, host: string): Promise<number | undefined> {
  return await new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { host } }, res => { res.resume(); resolve(res.statusCode) })
    req.on('error', reject)
  })
}

async function shoot (page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
}

describe('web console in a real browser', function () {
  this.timeout(120_000)
  const dirs = new TmpDirs()
  const daemons: Daemon[] = []
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let dirA: string
  let dirB: string
  let a: Daemon
  let b: Daemon | undefined
  /** What the page reported: script errors and Content-Security-Policy violations. */
  const pageProblems: string[] = []

  before(async function () {
    mkdirSync(SHOTS, { recursive: true })
    dirA = dirs.make()
    dirB = dirs.make()
    browser = await launchBrowser()
    a = await startDaemon(['--dir', dirA, '--name', 'laptop', '--no-dht'])
    daemons.push(a)
    context = await browser.newContext({ viewport: { width: 1200, height: 800 } })
    page = await context.newPage()
    page.on('pageerror', err => pageProblems.push(`page error: ${err.message}`))
    page.on('console', msg => { if (msg.type() === 'error') pageProblems.push(`console error: ${msg.text()}`) })
  })

  after(async function () {
    await context?.close()
    await browser?.close()
    for (const d of daemons.splice(0)) await d.stop()
    dirs.cleanup()
  })

  afterEach(function () {
    assert.deepEqual(pageProblems.splice(0), [], 'the page ran without script errors or CSP violations')
  })

  const go = async (hash: string, heading: RegExp): Promise<void> => {
    await page.goto(`${new URL(a.started.api as string).origin}/ui/${hash}`)
    await page.getByRole('heading', { level: 1, name: heading }).waitFor({ timeout: 10_000 })
  }

  it('opens through a one-time login link that leaves no secret in the URL, and shows this device', async () => {
    const link = await loginLink(dirA)
    const answer = await page.goto(link)
    assert.equal(answer?.status(), 200)
    const csp = (await answer?.allHeaders())?.['content-security-policy'] ?? ''
    assert.match(csp, /script-src 'self'/)
    assert.match(csp, /frame-ancestors 'none'/)
    await page.getByTestId('device-id').filter({ hasText: a.started.deviceId as string }).waitFor({ timeout: 10_000 })
    assert.equal(new URL(page.url()).hash, '#/overview', 'the code leaves the address bar (and history)')
    const token = (JSON.parse(readFileSync(join(dirA, 'api.json'), 'utf8')) as { token: string }).token
    assert.ok(!a.output().includes(token), 'the API token is never logged')
    assert.ok(!(await page.content()).includes(token), 'nor put in the page')
    assert.deepEqual(await context.cookies(), [], 'no cookie: another server on this host would receive it')
    assert.match(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem: (k: string) => string | null } }).sessionStorage.getItem('peakdb.console.token')) ?? '', /^[\w-]{43}$/, 'the session lives in this tab')
    await checkA11y(page, 'the overview')
    await shoot(page, 'overview')
    // the link works once
    const again = await browser.newContext()
    try {
      const p = await again.newPage()
      await p.goto(link)
      await p.getByRole('heading', { level: 1, name: 'Login link expired' }).waitFor({ timeout: 10_000 })
      assert.doesNotMatch(await p.content(), /12D3KooW/, 'nothing about the node')
    } finally {
      await again.close()
    }
  })

  it('gives a stranger, another tab and a page of another local server nothing, and refuses a foreign Host', async () => {
    const origin = new URL(a.started.api as string).origin
    const stranger = await browser.newContext()
    try {
      const p = await stranger.newPage()
      assert.equal((await p.goto(`${origin}/ui/`))?.status(), 200, 'the page itself is public code')
      await p.getByRole('heading', { level: 1, name: 'Sign in to PeakDB' }).waitFor({ timeout: 10_000 })
      assert.doesNotMatch(await p.content(), /12D3KooW/, 'nothing about the node')
      assert.equal((await p.request.post(`${origin}/ui/api/status`, { data: {}, headers: { origin } })).status(), 401)
      assert.equal((await p.request.get(`${origin}/ui/api/session`)).status(), 401)
      assert.equal((await p.request.get(`${origin}/ui/events`)).status(), 401)
    } finally {
      await stranger.close()
    }
    // a page of another server on this host (any port): the browser sends it no credential, and
    // its calls to the console are refused
    const seen: Array<Record<string, unknown>> = []
    const other = createServer((req, res) => {
      seen.push(req.headers)
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<!doctype html><title>elsewhere</title>')
    })
    await new Promise<void>(resolve => other.listen(0, '127.0.0.1', resolve))
    try {
      const elsewhere = `http://127.0.0.1:${(other.address() as AddressInfo).port}/`
      // a tab of its own, whose console reports the refused calls
      const evil = await context.newPage()
      await evil.goto(elsewhere)
      assert.ok(seen.length > 0 && seen.every(h => h.cookie === undefined && h.authorization === undefined), 'no cookie or token reaches another port')
      const outcomes = await evil.evaluate(async (target: string) => await Promise.all([
        fetch(`${target}/ui/api/revoke`, { method: 'POST', body: '{"device":"x"}', headers: { 'content-type': 'application/json' } }).then(r => r.status, () => 'blocked'),
        fetch(`${target}/ui/api/revoke`, { method: 'POST', mode: 'no-cors', body: '{"device":"x"}' }).then(r => r.type, () => 'blocked')
      ]), origin)
      assert.deepEqual(outcomes, ['blocked', 'blocked'], 'a cross-origin call is refused: by the preflight, or by Cross-Origin-Resource-Policy')
      await evil.close()
    } finally {
      other.closeAllConnections()
      await new Promise<void>(resolve => other.close(() => resolve()))
    }
    assert.equal(await statusWithHost(`${origin}/ui/`, 'attacker.example'), 421, 'a DNS-rebound name gets nothing')
    // the bearer-token API is untouched by the console's sessions
    const noToken = await fetch(`${origin}/api/v1/status`, { method: 'POST', body: '{}' })
    assert.equal(noToken.status, 401)
  })

  it('`peakdb ui` opens the desktop browser on a 0600 file, keeping the code out of process arguments', async () => {
    const bin = dirs.make()
    const record = join(bin, 'args')
    writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${record}'\n`, { mode: 0o755 })
    const r = await runCli(['ui', '--dir', dirA], { env: { PATH: `${bin}:${process.env.PATH ?? ''}`, DISPLAY: ':99' } })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /opening it in your browser/)
    const args = await waitFor(() => { try { return readFileSync(record, 'utf8') } catch { return undefined } }, { timeoutMs: 5_000, message: 'the browser to be started' })
    const file = join(dirA, 'ui-login.html')
    assert.equal(args, `${file}\n`, 'the browser gets the file, not the link')
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const link = /http:\/\/127\.0\.0\.1:\d+\/ui\/#login=[\w-]{43}/.exec(r.stdout)?.[0]
    assert.ok(link !== undefined && readFileSync(file, 'utf8').includes(`url=${link}`), 'the file forwards to the printed link')
  })

  it('creates an invite with a QR code, and shows the new device when it joins', async () => {
    await go('#/pair', /pair/i)
    await page.getByRole('button', { name: 'Create invite' }).click()
    const code = (await page.getByTestId('invite-code').textContent({ timeout: 10_000 }))?.trim() ?? ''
    assert.match(code, /^peak1[a-z2-7]+$/)
    const qr = page.getByTestId('invite-qr')
    assert.match(await qr.getAttribute('src') ?? '', /^data:image\/svg\+xml/)
    assert.ok(await qr.evaluate(img => (img as unknown as { naturalWidth: number }).naturalWidth > 0), 'the QR code renders as an image')
    assert.match(await page.getByTestId('invite-countdown').textContent() ?? '', /^\d+:\d\d$/)
    await checkA11y(page, 'the pair page')
    await shoot(page, 'pair')
    const join = await runCli(['pair', 'join', code, '--name', 'desktop', '--dir', dirB, '--json'], { timeoutMs: 60_000 })
    assert.equal(join.code, 0, join.stderr)
    await page.getByTestId('joined-devices').getByText('desktop').waitFor({ timeout: 15_000 })
    b = await startDaemon(['--dir', dirB, '--no-dht'])
    daemons.push(b)
  })

  it('lists collections and updates an open collection live when the CLI writes', async () => {
    assert.equal((await runCli(['put', 'notes', '{"_id":"first","title":"First note"}', '--dir', dirA])).code, 0)
    await go('#/collections', /collections/i)
    const row = page.locator('tr[data-collection="notes"]')
    await row.waitFor({ timeout: 10_000 })
    await checkA11y(page, 'the collection list')
    await shoot(page, 'collections')
    await row.getByRole('link').first().click()
    await page.locator('tr[data-doc-id="first"]').waitFor({ timeout: 10_000 })
    const put = await runCli(['put', 'notes', '{"_id":"live","title":"Written by the CLI"}', '--dir', dirA])
    assert.equal(put.code, 0, put.stderr)
    const written = Date.now()
    await page.locator('tr[data-doc-id="live"]').waitFor({ timeout: 2_000 })
    assert.ok(Date.now() - written <= 2_000, 'the new document shows within 2 s, without a reload')
    // a write on the other device arrives through sync and shows too
    assert.equal((await runCli(['put', 'notes', '{"_id":"remote","title":"From the desktop"}', '--dir', dirB])).code, 0)
    await page.locator('tr[data-doc-id="remote"]').waitFor({ timeout: 20_000 })
    await checkA11y(page, 'a collection')
    await shoot(page, 'collection')
  })

  it('edits with inline validation errors, filters, and deletes after a confirmation', async () => {
    await go('#/collections/notes', /notes/)
    await page.locator('tr[data-doc-id="first"]').getByRole('button', { name: 'Edit' }).click()
    const editor = page.getByLabel('Document JSON')
    await editor.fill('{"title": "broken"')
    await page.getByRole('button', { name: 'Save' }).click()
    await page.getByRole('alert').first().waitFor({ timeout: 5_000 })
    assert.equal(await editor.inputValue(), '{"title": "broken"', 'the text is kept')
    await editor.fill('{"_id":"first","title":"First note, edited"}')
    await page.getByRole('button', { name: 'Save' }).click()
    await waitFor(async () => {
      const r = await runCli(['get', 'notes', 'first', '--json', '--dir', dirA])
      return r.code === 0 && (JSON.parse(r.stdout) as { title: string }).title === 'First note, edited'
    }, { timeoutMs: 10_000, message: 'the edit to be saved' })
    await page.getByLabel('Where filter (JSON)').fill('{"title":"Written by the CLI"}')
    await page.getByRole('button', { name: 'Apply' }).click()
    await waitFor(async () => await page.locator('tr[data-doc-id]').count() === 1, { timeoutMs: 5_000, message: 'the filter to leave one row' })
    await page.locator('tr[data-doc-id="live"]').getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('button', { name: 'Delete document' }).click()
    await waitFor(async () => (await runCli(['get', 'notes', 'live', '--dir', dirA])).code !== 0, { timeoutMs: 10_000, message: 'the document to be deleted' })
    await page.locator('tr[data-doc-id="live"]').waitFor({ state: 'detached', timeout: 5_000 })
  })

  it('finds a file that lives only on the other device with a swarm search from the page', async () => {
    assert.ok(b !== undefined, 'the desktop joined')
    const folder = dirs.make()
    writeFileSync(join(folder, 'tax-2025.txt'), 'Tax return 2025: receipts for the accountant, due in April.')
    const indexed = await runCli(['index', folder, '--dir', dirB, '--json'], { timeoutMs: 90_000 })
    assert.equal(indexed.code, 0, indexed.stderr)
    await go('#/search', /search/i)
    await page.getByLabel('Search query').fill('tax return receipts')
    await page.getByLabel('Collection').fill('files')
    await page.getByLabel('Across all devices').check()
    const hit = page.getByTestId('search-results').locator('li[data-hit-id]').first()
    // the desktop answers once it is connected and its index is searchable: ask again until then
    await waitFor(async () => {
      await page.getByRole('button', { name: 'Search' }).click()
      return await hit.waitFor({ timeout: 5_000 }).then(() => true, () => false)
    }, { timeoutMs: 60_000, intervalMs: 500, message: 'the swarm search to find the desktop\'s file' })
    const text = await hit.textContent() ?? ''
    assert.match(text, /desktop/, 'the hit names the device it came from')
    assert.match(text, /tax-2025\.txt/, 'and the file path')
    assert.match(text, /\d\.\d{3}/, 'and its score')
    await checkA11y(page, 'search')
    await shoot(page, 'search')
  })

  it('shows memory, the profile, and revokes a device after a confirmation', async () => {
    assert.equal((await runCli(['memory', 'add', 'Ada prefers tea over coffee', '--knowledge', '--entity', 'Ada', '--dir', dirA])).code, 0)
    await go('#/memory', /memory/i)
    await page.getByLabel('Recall query').fill('what does Ada drink')
    await page.getByRole('button', { name: 'Recall' }).click()
    await page.getByText('Ada prefers tea over coffee').first().waitFor({ timeout: 30_000 })
    await checkA11y(page, 'memory')
    await shoot(page, 'memory')
    await go('#/profile', /profile/i)
    await checkA11y(page, 'the profile')
    await shoot(page, 'profile')
    assert.ok(b !== undefined)
    const desktop = b.started.deviceId as string
    await go('#/devices', /devices/i)
    const row = page.locator(`tr[data-device="${desktop}"]`)
    await row.waitFor({ timeout: 10_000 })
    await checkA11y(page, 'devices')
    await shoot(page, 'devices')
    await row.getByRole('button', { name: 'Revoke' }).click()
    await page.getByRole('button', { name: 'Cancel' }).click()
    assert.match(await row.textContent() ?? '', /desktop/)
    assert.doesNotMatch(await row.textContent() ?? '', /revoked/i, 'cancel revokes nothing')
    await row.getByRole('button', { name: 'Revoke' }).click()
    await page.getByRole('button', { name: 'Revoke device' }).click()
    await waitFor(async () => /revoked/i.test(await row.textContent() ?? ''), { timeoutMs: 10_000, message: 'the row to show the revocation' })
    const list = JSON.parse((await runCli(['devices', '--json', '--dir', dirA])).stdout) as Array<{ device: string, revoked: boolean }>
    assert.equal(list.find(d => d.device === desktop)?.revoked, true)
  })
})

describe('web console sessions', function () {
  this.timeout(60_000)
  const dirs = new TmpDirs()

  it('`peakdb ui` without a daemon says how to start one', async () => {
    const dir = dirs.make()
    const r = await runCli(['ui', '--dir', dir])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /InvalidOptionError: no daemon is running on .*start it with `peakdb start`/)
  })

  it('login codes work once and expire; sessions end on sign-out, their event streams too', async () => {
    let now = Date.now()
    const dir = dirs.make()
    const node = await PeakNode.open({ dir, embedder: hashEmbedder(), backgroundIndexing: false })
    const api = new ApiServer({ node }, { infoPath: join(dir, 'api.json'), onShutdown: () => {}, console: { now: () => now } })
    try {
      const info = await api.start()
      const codeOf = (url: string): string => new URL(url).hash.slice('#login='.length)
      const login = async (code: string, origin = info.url): Promise<Response> =>
        await fetch(`${info.url}/ui/api/login`, { method: 'POST', headers: { origin, 'content-type': 'application/json' }, body: JSON.stringify({ code }) })
      const late = codeOf(api.console.loginLink().url)
      now += LOGIN_CODE_TTL_MS + 1
      assert.equal((await login(late)).status, 401, 'an expired code is refused')
      const code = codeOf(api.console.loginLink().url)
      assert.equal((await login(code, 'http://127.0.0.1:1')).status, 403, 'a login from another origin is refused')
      const first = await login(code)
      assert.equal(first.status, 200)
      const { token } = (await first.json() as { result: { token: string } }).result
      assert.equal((await login(code)).status, 401, 'a code works once')
      const headers = { authorization: `Bearer ${token}`, origin: info.url, 'content-type': 'application/json' }
      assert.equal((await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers, body: '{}' })).status, 200)
      assert.equal((await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers: { ...headers, origin: 'http://127.0.0.1:1' }, body: '{}' })).status, 403)
      assert.equal((await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers: { ...headers, authorization: 'Bearer nope' }, body: '{}' })).status, 401)
      const bad = await fetch(`${info.url}/ui/api/put`, { method: 'POST', headers, body: '{"collection":"Bad Name!","doc":{}}' })
      assert.equal(bad.status, 400)
      assert.equal((await bad.json() as { error: { name: string } }).error.name, 'InvalidCollectionNameError')
      const notOffered = await fetch(`${info.url}/ui/api/uiLogin`, { method: 'POST', headers, body: '{}' })
      assert.equal((await notOffered.json() as { error: { name: string } }).error.name, 'InvalidOptionError')
      // the event stream carries changes, and ends when its session does
      const stream = await fetch(`${info.url}/ui/events`, { headers: { authorization: `Bearer ${token}` } })
      assert.equal(stream.status, 200)
      assert.equal(stream.headers.get('content-type'), 'text/event-stream; charset=utf-8')
      const reader = (stream.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader()
      let received = ''
      const reading = (async () => { for (;;) { const r = await reader.read(); if (r.done) return; received += r.value } })()
      await node.collection('notes').put({ _id: 'n1', title: 'hello' })
      await waitFor(() => received.includes('"id":"n1"'), { timeoutMs: 5_000, message: 'the change event' })
      assert.match(received, /event: change\ndata: \{"origin":"local","changes":\[\{"collection":"notes","id":"n1","type":"added"\}\]\}/)
      assert.equal((await fetch(`${info.url}/ui/api/logout`, { method: 'POST', headers })).status, 200)
      await withTimeout(reading, 5_000, 'the event stream to end with its session')
      assert.equal((await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers, body: '{}' })).status, 401)
    } finally {
      await api.stop()
      await node.close()
    }
  })

  after(() => dirs.cleanup())
})
