// Guest RAM lives in files on a tmpfs (VM_RAM_DIR). A full tmpfs would kill a guest at its next
// page fault, so creates are refused once the RAM files of the running VMs fill it. The test
// mounts a small tmpfs of its own.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'

const ramDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-ram-'))
let mgr: ManagerProcess

beforeAll(async () => {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=400m,mode=700', 'tmpfs', ramDir])
  mgr = new ManagerProcess({ VM_RAM_DIR: ramDir })
  await mgr.start()
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
  execFileSync('umount', [ramDir])
  fs.rmSync(ramDir, { recursive: true, force: true })
})

it('refuses a VM whose memory the RAM directory cannot hold, leaving nothing behind', async () => {
  const first = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(first.status).toBe(201)
  expect(fs.readdirSync(ramDir)).toEqual([`${first.body.id}.ram`])
  const second = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(second.status).toBe(503)
  expect(second.body.code).toBe('host_memory_exhausted')
  expect(second.body.message).toContain('256 MiB needed')
  expect((await mgr.request('GET', '/v1/vms')).body).toHaveLength(1)
  expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(1)
  expect(fs.readdirSync(ramDir)).toEqual([`${first.body.id}.ram`])
  // Room again once the first VM is gone.
  expect((await mgr.request('DELETE', `/v1/vms/${first.body.id}`)).status).toBe(204)
  expect(fs.readdirSync(ramDir)).toEqual([])
  const third = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(third.status).toBe(201)
})

it('builds no image seed the RAM directory cannot hold; the create that asked for it is unharmed', async () => {
  await mgr.cleanup()
  mgr = new ManagerProcess({ VM_RAM_DIR: ramDir, ENABLE_IMAGE_SEED: 'true' })
  await mgr.start()
  const image = async () => (await mgr.request('GET', '/v1/images')).body.find((i: { isDefault: boolean }) => i.isDefault)
  const until = async (what: string, check: () => Promise<boolean>) => {
    for (const deadline = Date.now() + 300_000; !(await check()); await sleep(250)) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}\n${mgr.output.slice(-3000)}`)
    }
  }
  // The template seed (256 MiB) fits in the 400 MiB directory while it is built.
  await until('the template seed', async () => (await image()).seedStatus === 'ready')
  // A 320 MiB VM leaves no room for the 320 MiB VM its seed would boot.
  const cold = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 320, allowIps: [] })
  expect(cold.status).toBe(201)
  expect(cold.body.provisionMode).toBe('boot')
  await until('the refused seed build', async () => mgr.output.includes('image seed not built: no room in VM_RAM_DIR'))
  expect((await image()).seeds.map((s: { memMb: number; status: string }) => [s.memMb, s.status])).toEqual([[256, 'ready']])
  expect(fs.readdirSync(ramDir)).toEqual([`${cold.body.id}.ram`])
  expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(1)
  expect((await mgr.request('POST', `/v1/vms/${cold.body.id}/exec`, { cmd: 'echo ok' })).body.stdout).toBe('ok\n')
})
