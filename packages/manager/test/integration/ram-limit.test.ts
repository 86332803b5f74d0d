// Guest RAM lives in files on a tmpfs (VM_RAM_DIR). A full tmpfs would kill a guest at its next
// page fault, so creates are refused once the RAM files of the running VMs fill it. The test
// mounts a small tmpfs of its own.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
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
