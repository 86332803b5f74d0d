// The lifecycle verbs through the API on the real services and the fake VMM: stop, start,
// pause, resume and their conflicts, and what the manager makes of a VMM that exits on its
// own or an agent that stops answering (health checked every 50 ms here).
import { afterAll, beforeAll, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ healthIntervalMs: 50 })
})
afterAll(() => m?.close())

async function runningVm(): Promise<string> {
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  expect(r.body.state).toBe('RUNNING')
  return r.body.id
}

it('stop shuts the guest down (STOPPED, VMM gone); start boots it again with the same address', async () => {
  const id = await runningVm()
  const { guestIp } = (await m.api('GET', `/v1/vms/${id}`)).body
  expect((await m.api('POST', `/v1/vms/${id}/stop`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ state: 'STOPPED' })
  expect(m.vmm.vm(id)!.requests).toContain('POST /shutdown')
  expect(m.vmm.vm(id)!.exit).toEqual({ code: 0, signal: null })
  expect(m.ramFiles()).toEqual([])

  expect((await m.api('POST', `/v1/vms/${id}/start`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ state: 'RUNNING', guestIp, lastError: null })
  expect(m.vmm.vm(id)).toMatchObject({ origin: 'boot', exit: undefined })
  expect((await m.api('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })).body).toMatchObject({ exitCode: 0 })
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('start of a RUNNING VM is 409 with the original sentence; stop of a STOPPED one too', async () => {
  const id = await runningVm()
  const r = await m.api('POST', `/v1/vms/${id}/start`)
  expect(r.status).toBe(409)
  expect(r.body).toMatchObject({ code: 'vm_state_conflict', message: 'VM must be STOPPED to start (state=RUNNING)' })
  await m.api('POST', `/v1/vms/${id}/stop`)
  expect((await m.api('POST', `/v1/vms/${id}/stop`)).body.message).toBe('VM must be RUNNING to stop (state=STOPPED)')
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('pause freezes the VMM (PAUSED, exec refused); resume continues it and sets the guest clock again', async () => {
  const id = await runningVm()
  expect((await m.api('POST', `/v1/vms/${id}/pause`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('PAUSED')
  expect(m.vmm.vm(id)!.paused).toBe(true)
  expect((await m.api('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })).status).toBe(409)
  expect((await m.api('POST', `/v1/vms/${id}/pause`)).body.message).toBe('VM must be RUNNING to pause (state=PAUSED)')
  const inits = m.vmm.vm(id)!.inits.length
  expect((await m.api('POST', `/v1/vms/${id}/resume`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('RUNNING')
  expect(m.vmm.vm(id)!.paused).toBe(false)
  expect(m.vmm.vm(id)!.inits.length).toBe(inits + 1)
  expect((await m.api('POST', `/v1/vms/${id}/resume`)).body.message).toBe('VM must be PAUSED to resume (state=RUNNING)')
  // A paused VM stops cleanly too: it is resumed just long enough to shut down.
  await m.api('POST', `/v1/vms/${id}/pause`)
  expect((await m.api('POST', `/v1/vms/${id}/stop`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('STOPPED')
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('a VMM that exits on its own makes the VM ERROR, naming the exit; start boots it again', async () => {
  const id = await runningVm()
  await m.vmm.crash(id, 'SIGSEGV')
  const vm = await m.waitForState(id, 'ERROR')
  expect(vm.lastError).toBe('VM process exited unexpectedly (signal SIGSEGV)')
  expect(m.ramFiles()).toEqual([])
  expect((await m.api('POST', `/v1/vms/${id}/start`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ state: 'RUNNING', lastError: null })
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('an agent silent to health checks makes the VM ERROR; when it answers again the VM is RUNNING', async () => {
  const id = await runningVm()
  m.vmm.silenceHealth(id)
  expect((await m.waitForState(id, 'ERROR')).lastError).toMatch(/^guest agent not responding: agent did not reply within 50 ms/)
  m.vmm.silenceHealth(id, false)
  expect((await m.waitForState(id, 'RUNNING')).lastError).toMatch(/^guest agent answers again since /)
  expect((await m.api('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })).body).toMatchObject({ exitCode: 0 })
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('a start the VMM refuses is 500 vm_boot_failed and leaves the VM ERROR with its disk; the next start boots it', async () => {
  const id = await runningVm()
  await m.api('POST', `/v1/vms/${id}/stop`)
  m.vmm.failNextBoot('kernel not found')
  const r = await m.api('POST', `/v1/vms/${id}/start`)
  expect(r.status).toBe(500)
  expect(r.body.code).toBe('vm_boot_failed')
  expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ state: 'ERROR', lastError: 'start failed: kernel not found' })
  expect(m.vmDirs()).toContain(id)
  expect(m.ramFiles()).toEqual([])
  expect((await m.api('POST', `/v1/vms/${id}/start`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body).toMatchObject({ state: 'RUNNING', lastError: null })
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('start of an ERROR VM whose agent is silent ends the old VMM before booting a new one', async () => {
  const id = await runningVm()
  m.vmm.silenceHealth(id)
  await m.waitForState(id, 'ERROR')
  const old = m.vmm.vm(id)!
  expect((await m.api('POST', `/v1/vms/${id}/start`)).status).toBe(204)
  expect(old.exit).toBeDefined()
  expect(m.vmm.vm(id)).not.toBe(old)
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('RUNNING')
  await m.api('DELETE', `/v1/vms/${id}`)
})

it('stop of a VM whose VMM crashed (ERROR) makes it STOPPED', async () => {
  const id = await runningVm()
  await m.vmm.crash(id)
  await m.waitForState(id, 'ERROR')
  expect((await m.api('POST', `/v1/vms/${id}/stop`)).status).toBe(204)
  expect((await m.api('GET', `/v1/vms/${id}`)).body.state).toBe('STOPPED')
  await m.api('DELETE', `/v1/vms/${id}`)
})
