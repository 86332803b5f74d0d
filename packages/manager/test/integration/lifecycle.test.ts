// Lifecycle under stress and failure, for real: parallel creates, a VMM that dies under the
// manager, and a manager killed with -9 in the middle of a create.
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'

let mgr: ManagerProcess

beforeAll(async () => {
  mgr = new ManagerProcess({ MAX_VMS: '6' })
  await mgr.start()
})
afterAll(async () => {
  for (const vm of (await mgr.request('GET', '/v1/vms')).body ?? []) await mgr.request('DELETE', `/v1/vms/${vm.id}`)
  await mgr.cleanup()
})

const vmDirs = () => fs.readdirSync(path.join(mgr.storageRoot, 'vms')).sort()

it('creates 5 VMs in parallel, each running its own guest, and enforces MAX_VMS', async () => {
  const created = await Promise.all(Array.from({ length: 5 }, () => mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })))
  for (const c of created) expect(c.status, JSON.stringify(c.body)).toBe(201)
  const ids = created.map((c) => c.body.id as string)
  const bootIds = await Promise.all(ids.map((id) => mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'cat /proc/sys/kernel/random/boot_id' })))
  expect(new Set(bootIds.map((r) => r.body.stdout)).size).toBe(5)
  expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(5)

  // Quota: one more fits (MAX_VMS=6), the next is refused with the original's message.
  const sixth = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(sixth.status).toBe(201)
  const seventh = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(seventh.status).toBe(429)
  expect(seventh.body).toEqual({ code: 'quota_exceeded', message: 'VM quota exceeded (maxVms=6)', requestId: expect.any(String) })

  await Promise.all([...ids, sixth.body.id].map((id) => mgr.request('DELETE', `/v1/vms/${id}`)))
  expect(qemuProcessesOf(mgr.storageRoot)).toEqual([])
  expect(vmDirs()).toEqual([])
})

it('reports a VM whose VMM died as ERROR, and starts it again from its disk', async () => {
  const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(c.status).toBe(201)
  const id = c.body.id
  await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'echo survived > /workspace/f; sync' })
  const [pid] = qemuProcessesOf(mgr.storageRoot)
  process.kill(pid, 'SIGKILL')
  let vm
  for (let i = 0; i < 100; i++) {
    vm = (await mgr.request('GET', `/v1/vms/${id}`)).body
    if (vm.state === 'ERROR') break
    await sleep(100)
  }
  expect(vm).toMatchObject({ state: 'ERROR', lastError: expect.stringContaining('exited unexpectedly') })
  expect((await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })).status).toBe(409)
  expect((await mgr.request('POST', `/v1/vms/${id}/start`)).status).toBe(204)
  const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'cat /workspace/f' })
  expect(r.body.stdout).toBe('survived\n')
  expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
})

it('a manager killed with -9 during a create undoes that create on restart', async () => {
  const pending = mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] }).catch(() => undefined)
  // Wait until the create is really under way: its QEMU process exists.
  for (let i = 0; i < 200 && qemuProcessesOf(mgr.storageRoot).length === 0; i++) await sleep(25)
  expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(1)
  await mgr.stop('SIGKILL')
  await pending
  await mgr.start()
  expect((await mgr.request('GET', '/v1/vms')).body).toEqual([])
  expect(qemuProcessesOf(mgr.storageRoot)).toEqual([])
  expect(vmDirs()).toEqual([])
})
