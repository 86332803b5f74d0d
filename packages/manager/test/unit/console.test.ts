// The admin console in a real headless Chromium against the real manager services (fake VMM: no
// guest here; test/integration/console-vm.test.ts runs commands in a real VM from the console).
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchBrowser, screenshotDir } from '../harness/browser.ts'
import { FakeManager } from '../harness/fake-manager.ts'

const EMAIL = 'console@example.com'
const PASSWORD = 'console password 123'
let m: FakeManager
let base: string
let browser: Browser
let page: Page
const received: string[] = []
const receiver = http.createServer((req, res) => {
  req.resume()
  received.push(String(req.headers['x-rds-event']))
  res.writeHead(204).end()
})

async function shot(name: string): Promise<void> {
  if (!screenshotDir) return
  fs.mkdirSync(screenshotDir, { recursive: true })
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true })
}

beforeAll(async () => {
  m = await FakeManager.start({ env: { ADMIN_EMAIL: EMAIL, ADMIN_PASSWORD: PASSWORD, WEBHOOK_RETRY_BASE_MS: '50' } })
  await m.app.listen({ port: 0, host: '127.0.0.1' })
  base = `http://127.0.0.1:${(m.app.server.address() as AddressInfo).port}`
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  browser = await launchBrowser()
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
})
afterAll(async () => {
  await browser?.close()
  receiver.close()
  await m?.close()
})

describe('the console', () => {
  it('sends a browser without a session to the login page, and refuses a wrong password with the API\'s sentence', async () => {
    await page.goto(`${base}/console/vms`)
    expect(new URL(page.url()).pathname).toBe('/login/')
    await page.getByLabel('Email').fill(EMAIL)
    await page.getByLabel('Password').fill('wrong password here')
    await page.getByRole('button', { name: 'Log in' }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Invalid credentials')
    await shot('login')
  })

  it('logs in to the dashboard, with overview cards and a live activity feed', async () => {
    await page.getByLabel('Password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.waitForURL(`${base}/console/`)
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    await page.getByText('running of').waitFor()
    // Something happens elsewhere (an API client): the feed shows it without a reload.
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    await page.getByLabel('Recent activity').getByText(`VM ${vm.id} created`).waitFor()
    await shot('dashboard')
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('creates a VM from the form and opens it; lists and deletes it', async () => {
    await page.getByRole('link', { name: 'Virtual machines' }).click()
    await page.getByRole('button', { name: 'New VM' }).click()
    await page.getByLabel('Memory (MiB)').fill('256')
    await page.getByLabel('Expires after').fill('600')
    await page.getByLabel('Then').selectOption('pause')
    await page.getByLabel('Labels').fill('team=red\nstage = ci')
    await page.getByRole('button', { name: 'Create VM' }).click()
    await page.waitForURL(/\/console\/vms\/[0-9a-f-]{36}$/)
    const id = page.url().split('/').at(-1)!
    await page.locator('.badge', { hasText: 'RUNNING' }).first().waitFor()
    const made = (await m.api('GET', `/v1/vms/${id}`)).body
    expect(made).toMatchObject({ state: 'RUNNING', createdBy: `admin:${EMAIL}`, ttlSeconds: 600, onExpire: 'pause', labels: { team: 'red', stage: 'ci' } })
    // (The VM page's screenshot comes from console-vm.test.ts: its terminal needs a real guest.)
    await page.getByRole('tab', { name: 'terminal' }).waitFor()
    await page.getByRole('link', { name: 'Virtual machines' }).click()
    await page.getByRole('link', { name: id.slice(0, 8) }).waitFor()
    const row = page.getByRole('row').filter({ hasText: id.slice(0, 8) })
    const text = (await row.textContent())!
    for (const shown of ['team=red', 'stage=ci']) expect(text).toContain(shown)
    expect(text).toMatch(/in \d+ min \(pause\)/)
    // A label finds the VM in the search; +1 h moves its deadline.
    await page.getByLabel('Search VMs').fill('team=red')
    await row.waitFor()
    await page.getByLabel('Search VMs').fill('')
    await row.getByRole('button', { name: '+1 h' }).click()
    await expect.poll(async () => Date.parse((await m.api('GET', `/v1/vms/${id}`)).body.expiresAt)).toBeGreaterThan(Date.parse(made.expiresAt) + 2_000_000)
    await shot('vms')
    page.once('dialog', (d) => void d.accept())
    await page.getByRole('row').filter({ hasText: id.slice(0, 8) }).getByRole('button', { name: 'Delete' }).click()
    await expect.poll(async () => (await m.api('GET', `/v1/vms/${id}`)).status).toBe(404)
    await page.getByText('No VMs yet.').waitFor()
  })

  it('shows the API\'s error sentence when a create is refused', async () => {
    await page.getByRole('button', { name: 'New VM' }).click()
    await page.getByLabel('vCPUs').fill('64')
    await page.getByRole('button', { name: 'Create VM' }).click()
    await expect.poll(() => page.getByRole('alert').first().textContent()).toContain('Invalid cpu (maxCpu=4)')
    await page.getByRole('button', { name: 'Cancel' }).click()
  })

  it('mints a key shown once, which works, and revokes it', async () => {
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.getByLabel('Name').fill('from the console')
    await page.getByRole('button', { name: 'Create key' }).click()
    const key = (await page.locator('code.secret').textContent())!
    expect(key).toMatch(/^rds_[0-9a-f]{12}_/)
    expect((await m.app.inject({ method: 'GET', url: '/v1/vms', headers: { 'x-api-key': key } })).statusCode).toBe(200)
    await shot('api-keys')
    page.once('dialog', (d) => void d.accept())
    await page.getByRole('row').filter({ hasText: 'from the console' }).getByRole('button', { name: 'Revoke' }).click()
    await page.getByRole('row').filter({ hasText: 'from the console' }).getByText('revoked').waitFor()
    expect((await m.app.inject({ method: 'GET', url: '/v1/vms', headers: { 'x-api-key': key } })).statusCode).toBe(401)
    // For E2B's SDKs: a key in their shape.
    await page.getByLabel('Name').fill('e2b scripts')
    await page.getByLabel('E2B-shaped').check()
    await page.getByRole('button', { name: 'Create key' }).click()
    await expect.poll(() => page.locator('code.secret').textContent()).toMatch(/^e2b_[0-9a-f]{40}$/)
    const e2bKey = (await page.locator('code.secret').textContent())!
    expect((await m.app.inject({ method: 'GET', url: '/v2/sandboxes', headers: { 'x-api-key': e2bKey } })).statusCode).toBe(200)
  })

  it('adds a webhook, sends a test event and shows its delivery', async () => {
    await page.getByRole('link', { name: 'Webhooks' }).click()
    await page.getByLabel('Name').fill('receiver')
    await page.getByLabel('URL').fill(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`)
    await page.getByRole('button', { name: 'Add webhook' }).click()
    await expect.poll(() => page.locator('code.secret').textContent()).toMatch(/^whsec_/)
    await page.getByRole('row').filter({ hasText: 'receiver' }).getByRole('button', { name: 'Send test' }).click()
    await expect.poll(() => received.includes('webhook.test')).toBe(true)
    const deliveries = page.getByRole('table', { name: 'Deliveries of receiver' })
    await expect
      .poll(async () => {
        await deliveries.getByRole('button', { name: 'Refresh' }).or(page.getByRole('button', { name: 'Refresh' })).first().click()
        return deliveries.textContent()
      })
      .toContain('delivered')
    await shot('webhooks')
  })

  it('pages through the activity log and shows images and snapshots', async () => {
    await page.getByRole('link', { name: 'Activity' }).click()
    await page.getByRole('cell', { name: 'webhook.created' }).waitFor()
    await shot('activity')
    await page.getByRole('link', { name: 'Images' }).click()
    await page.getByRole('cell', { name: /fake/ }).first().waitFor()
    await shot('images')
    await page.getByRole('link', { name: 'Snapshots' }).click()
    await page.getByText('No snapshots yet').waitFor()
  })

  it('creates a template, shows its build steps, spawns a VM from it and deletes it', async () => {
    await page.getByRole('link', { name: 'Templates' }).click()
    await page.getByText('No templates yet').waitFor()
    const form = page.getByRole('form', { name: 'New template' })
    await form.getByLabel('Name').fill('console-tpl')
    await form.getByLabel('Memory (MiB)').fill('256')
    await form.getByLabel(/Setup commands/).fill('echo one\n\necho two')
    await form.getByRole('button', { name: 'Create template' }).click()
    const row = page.getByRole('row').filter({ hasText: 'console-tpl' })
    // The build finishes in the background; the row follows it through the activity feed.
    await row.locator('.badge', { hasText: 'ready' }).waitFor()
    expect((await m.api('GET', '/v1/templates/console-tpl')).body).toMatchObject({ status: 'ready', memMb: 256, setup: ['echo one', 'echo two'], createdBy: `admin:${EMAIL}` })
    await row.getByText('Last build: 2 step(s)').click()
    expect(await row.locator('ol.steps').textContent()).toMatch(/echo one → exit 0.*echo two → exit 0/)
    await shot('templates')
    // A refused create shows the API's sentence.
    await form.getByLabel('Name').fill('console-tpl')
    await form.getByRole('button', { name: 'Create template' }).click()
    await expect.poll(() => form.getByRole('alert').textContent()).toContain('exists already')
    await row.getByRole('button', { name: 'New VM' }).click()
    await page.waitForURL(/\/console\/vms\/[0-9a-f-]{36}$/)
    const id = page.url().split('/').at(-1)!
    expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ provisionMode: 'snapshot', memMb: 256 })
    await m.api('DELETE', `/v1/vms/${id}`)
    // The snapshots page names a template's build as such.
    await page.getByRole('link', { name: 'Snapshots' }).click()
    await page.getByRole('cell', { name: 'template build' }).waitFor()
    await page.getByRole('link', { name: 'Templates' }).click()
    page.once('dialog', (d) => void d.accept())
    await page.getByRole('row').filter({ hasText: 'console-tpl' }).getByRole('button', { name: 'Delete' }).click()
    await page.getByText('No templates yet').waitFor()
    expect((await m.api('GET', '/v1/templates/console-tpl')).status).toBe(404)
  })

  it('logs out, after which the console needs a login again', async () => {
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(`${base}/login/`)
    await page.goto(`${base}/console/`)
    expect(new URL(page.url()).pathname).toBe('/login/')
  })

  it('serves its pages with strict headers and its assets as files', async () => {
    const r = await m.app.inject({ method: 'GET', url: '/login/' })
    expect(r.headers['content-security-policy']).toContain("script-src 'self'")
    expect(r.headers['x-frame-options']).toBe('DENY')
    expect((await m.app.inject({ method: 'GET', url: '/console/assets/console.js' })).statusCode).toBe(200)
    expect((await m.app.inject({ method: 'GET', url: '/' })).headers.location).toBe('/console/')
  })
})
