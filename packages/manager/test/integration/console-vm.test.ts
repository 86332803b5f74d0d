// The console in a real headless Chromium on the shared manager with a real VM: create it from
// the form, type into its terminal (a shell on a pseudo-terminal, over the WebSocket attach), run
// a command in the command console, run TypeScript, upload a file and see it, delete the VM.
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { tarGz } from '../harness/archives.ts'
import fs from 'node:fs'
import path from 'node:path'
import { launchBrowser, screenshotDir } from '../harness/browser.ts'
import type { ManagerClient } from '../harness/manager-process.ts'
import { SHARED_MANAGER_ENV } from '../harness/shared-manager-setup.ts'
import { sharedManager } from '../harness/shared-manager.ts'

let mgr: ManagerClient
let browser: Browser
let page: Page
let vmId: string | undefined

beforeAll(async () => {
  mgr = await sharedManager()
  browser = await launchBrowser()
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  page.setDefaultTimeout(120_000)
})
afterAll(async () => {
  await browser?.close()
  if (vmId) await mgr.request('DELETE', `/v1/vms/${vmId}`)
})

it('logs in and creates a VM from the form; it opens RUNNING', async () => {
  await page.goto(`${mgr.baseUrl}/login/`)
  await page.getByLabel('Email').fill(SHARED_MANAGER_ENV.ADMIN_EMAIL)
  await page.getByLabel('Password').fill(SHARED_MANAGER_ENV.ADMIN_PASSWORD)
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.waitForURL(`${mgr.baseUrl}/console/`)
  await page.getByRole('link', { name: 'Virtual machines' }).click()
  await page.getByRole('button', { name: 'New VM' }).click()
  await page.getByLabel('Memory (MiB)').fill('512')
  await page.getByRole('button', { name: 'Create VM' }).click()
  await page.waitForURL(/\/console\/vms\/[0-9a-f-]{36}$/)
  vmId = page.url().split('/').at(-1)!
  await page.locator('.badge', { hasText: 'RUNNING' }).first().waitFor()
})

it('opens a real terminal (a shell on a pseudo-terminal in the VM) and types into it', async () => {
  await page.getByRole('status', { name: 'Terminal status' }).filter({ hasText: 'connected' }).waitFor()
  await page.locator('.xterm-host').click()
  await page.keyboard.type('tty; echo "sum=$((6 * 7))"; stty size\n')
  const screen = page.locator('.xterm-rows')
  // `stty size` answers last: once its line is there, so are the others.
  await expect.poll(() => screen.textContent(), { timeout: 60_000 }).toContain('30 110')
  expect(await screen.textContent()).toMatch(/\/dev\/pts\/\d+/)
  expect(await screen.textContent()).toContain('sum=42')
  if (screenshotDir) {
    fs.mkdirSync(screenshotDir, { recursive: true })
    await page.screenshot({ path: path.join(screenshotDir, 'vm-detail.png'), fullPage: true })
  }
  // Ctrl-C interrupts the foreground job, as on any terminal.
  await page.keyboard.type('sleep 100\n')
  await page.keyboard.press('Control+C')
  await page.keyboard.type('echo after-interrupt\n')
  await expect.poll(() => screen.textContent(), { timeout: 60_000 }).toContain('after-interrupt')
})

it('runs a command in the command console and shows its output', async () => {
  await page.getByRole('tab', { name: 'commands' }).click()
  // Leaving the terminal tab ended its shell.
  await expect.poll(async () => (await mgr.request('GET', `/v1/vms/${vmId}/processes`)).body.filter((p: { state: string }) => p.state === 'running').length, { timeout: 60_000 }).toBe(0)
  await page.getByLabel('Command', { exact: true }).fill('echo "from $(id -un) in $(pwd): $((6 * 7))"')
  await page.getByLabel('Command', { exact: true }).press('Enter')
  await page.locator('.terminal pre.out', { hasText: 'in /workspace: 42' }).waitFor()
  await page.getByLabel('Command', { exact: true }).fill('exit 3')
  await page.getByLabel('Command', { exact: true }).press('Enter')
  await page.locator('.terminal', { hasText: 'exit 3' }).waitFor()
})

it('runs TypeScript and shows its result', async () => {
  await page.getByRole('tab', { name: 'code' }).click()
  await page.getByLabel('Code').fill('result.set({ answer: 6 * 7, runtime: typeof Deno })')
  await page.getByRole('button', { name: 'Run' }).click()
  const result = page.getByLabel('Result')
  await result.waitFor()
  expect(JSON.parse((await result.textContent())!)).toEqual({ answer: 42, runtime: 'object' })
})

it('uploads an archive into /workspace and lists it', async () => {
  await page.getByRole('tab', { name: 'files' }).click()
  await page.locator('input[type=file]').setInputFiles({ name: 'hello.tar.gz', mimeType: 'application/gzip', buffer: tarGz({ 'uploaded-from-console.txt': 'hi\n' }) })
  await page.getByRole('button', { name: 'Upload' }).click()
  await page.getByText('hello.tar.gz unpacked into /workspace').waitFor()
  await page.getByLabel('Workspace listing').filter({ hasText: 'uploaded-from-console.txt' }).waitFor()
  expect((await mgr.exec(vmId!, 'cat /workspace/uploaded-from-console.txt')).stdout).toBe('hi\n')
})

it('shows the run in the VM\'s execution history, and deletes the VM', async () => {
  await page.getByRole('tab', { name: 'logs' }).click()
  await page.getByRole('cell', { name: /echo "from/ }).waitFor()
  page.once('dialog', (d) => void d.accept())
  await page.getByRole('button', { name: 'Delete' }).click()
  await expect.poll(async () => (await mgr.request('GET', `/v1/vms/${vmId}`)).status, { timeout: 60_000 }).toBe(404)
  vmId = undefined
})
