/**
 * The web console, end to end: real daemons started through the CLI, Debian's Chromium driven
 * by playwright-core, axe-core on every page. Screenshots land in test/artifacts/console/.
 */
import { strict as assert } from 'node:assert'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
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
import { waitFor } from './helpers/wait-for.js'

const SHOTS = join(ARTIFACTS, 'console')
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')

async function loginLink (dir: string): Promise<string> {
  const r = await runCli(['ui', '--json', '--dir', dir])
  assert.equal(r.code, 0, r.stderr)
  const { url } = JSON.parse(r.stdout) as { url: string }
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/ui\/login\?code=[\w-]{43}$/)
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
    const started = Date.now()
    const answer = await page.goto(link)
    assert.equal(answer?.status(), 200)
    assert.equal(new URL(page.url()).pathname, '/ui/', 'the code is traded for a cookie and leaves the address bar')
    assert.equal(new URL(page.url()).search, '')
    const csp = (await answer?.allHeaders())?.['content-security-policy'] ?? ''
    assert.match(csp, /script-src 'self'/)
    assert.match(csp, /frame-ancestors 'none'/)
    await page.getByTestId('device-id').filter({ hasText: a.started.deviceId as string }).waitFor({ timeout: 10_000 })
    const firstRenderMs = Date.now() - started
    assert.ok(firstRenderMs < 10_000)
    const token = (JSON.parse(readFileSync(join(dirA, 'api.json'), 'utf8')) as { token: string }).token
    assert.ok(!a.output().includes(token), 'the API token is never logged')
    assert.ok(!(await page.content()).includes(token), 'nor put in the page')
    const cookies = await context.cookies()
    assert.equal(cookies.length, 1)
    assert.equal(cookies[0]?.httpOnly, true)
    assert.equal(cookies[0]?.sameSite, 'Strict')
    await checkA11y(page, 'the overview')
    await shoot(page, 'overview')
    // the link works once
    const again = await browser.newContext()
    try {
      const p = await again.newPage()
      assert.equal((await p.goto(link))?.status(), 401)
      assert.match(await p.content(), /Link expired/)
    } finally {
      await again.close()
    }
  })

  it('refuses a stranger without the session, a request without the CSRF token, and a foreign Host', async () => {
    const origin = new URL(a.started.api as string).origin
    const stranger = await browser.newContext()
    try {
      const p = await stranger.newPage()
      const r = await p.goto(`${origin}/ui/`)
      assert.equal(r?.status(), 401)
      assert.doesNotMatch(await p.content(), /12D3KooW/, 'nothing about the node')
      const api = await p.request.post(`${origin}/ui/api/status`, { data: {}, headers: { origin } })
      assert.equal(api.status(), 401)
      const events = await p.request.get(`${origin}/ui/events`)
      assert.equal(events.status(), 401)
      const asset = await p.request.get(`${origin}/ui/assets/app.js`)
      assert.equal(asset.status(), 401)
    } finally {
      await stranger.close()
    }
    // signed in, but no CSRF token (what a cross-site form or script could send); from a page
    // of its own, whose console may report the 403
    const other = await context.newPage()
    try {
      await other.goto(`${origin}/ui/#/overview`)
      const forged = await other.evaluate(async () => {
        const r = await fetch('/ui/api/collections', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
        return r.status
      })
      assert.equal(forged, 403)
    } finally {
      await other.close()
    }
    assert.equal(await statusWithHost(`${origin}/ui/`, 'attacker.example'), 421, 'a DNS-rebound name gets nothing')
    // the bearer-token API is untouched by the console's session
    const noToken = await fetch(`${origin}/api/v1/status`, { method: 'POST', body: '{}' })
    assert.equal(noToken.status, 401)
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
    await page.getByRole('button', { name: 'Search' }).click()
    const hit = page.getByTestId('search-results').locator('li[data-hit-id]').first()
    await hit.waitFor({ timeout: 60_000 })
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

  it('login links expire and a logged-out session is gone', async () => {
    let now = Date.now()
    const dir = dirs.make()
    const node = await PeakNode.open({ dir, embedder: hashEmbedder(), backgroundIndexing: false })
    const api = new ApiServer({ node }, { infoPath: join(dir, 'api.json'), onShutdown: () => {}, console: { now: () => now } })
    try {
      const info = await api.start()
      const late = api.console.loginLink()
      now += LOGIN_CODE_TTL_MS + 1
      assert.equal((await fetch(late.url, { redirect: 'manual' })).status, 401, 'an expired link is refused')
      const link = api.console.loginLink()
      const login = await fetch(link.url, { redirect: 'manual' })
      assert.equal(login.status, 303)
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string
      assert.match(cookie, /^peakdb_ui_\d+=[\w-]{43}$/)
      const session = await (await fetch(`${info.url}/ui/api/session`, { headers: { cookie } })).json() as { result: { csrf: string } }
      const headers = { cookie, origin: info.url, 'x-peakdb-csrf': session.result.csrf, 'content-type': 'application/json' }
      const status = await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers, body: '{}' })
      assert.equal(status.status, 200)
      const wrongOrigin = await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers: { ...headers, origin: 'http://127.0.0.1:1' }, body: '{}' })
      assert.equal(wrongOrigin.status, 403)
      const bad = await fetch(`${info.url}/ui/api/put`, { method: 'POST', headers, body: '{"collection":"Bad Name!","doc":{}}' })
      assert.equal(bad.status, 400)
      assert.equal((await bad.json() as { error: { name: string } }).error.name, 'InvalidCollectionNameError')
      assert.equal((await fetch(`${info.url}/ui/api/logout`, { method: 'POST', headers })).status, 200)
      assert.equal((await fetch(`${info.url}/ui/api/status`, { method: 'POST', headers, body: '{}' })).status, 401)
    } finally {
      await api.stop()
      await node.close()
      dirs.cleanup()
    }
  })
})
