// Creating a VM through the API on the real services and the fake VMM: a cold boot ends
// RUNNING with its address, TAP and disk; a boot that fails leaves nothing at all behind.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { tapName } from '../../../src/runtime/network/host-network.ts'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager
const shape = { cpu: 1, memMb: 256, allowIps: [] }

beforeAll(async () => {
  m = await FakeManager.start()
})
afterAll(() => m?.close())

/** The lowest VM address of the manager's network (.0 network, .1 gateway). */
const firstAddress = () => m.env.VM_NETWORK_CIDR.replace(/\.0\/24$/, '.2')

it('a create boots the VM: RUNNING, provisionMode boot, its address, TAP, disk and RAM file; the agent got its network', async () => {
  const r = await m.api('POST', '/v1/vms', shape)
  expect(r.status).toBe(201)
  expect(r.body).toMatchObject({ state: 'RUNNING', provisionMode: 'boot', guestIp: firstAddress(), lastError: null })
  const id = r.body.id
  expect(m.vmm.vm(id)).toMatchObject({ origin: 'boot', exit: undefined })
  expect(m.vmm.vm(id)!.inits[0]!.network).toMatchObject({ address: firstAddress(), gateway: m.env.VM_NETWORK_CIDR.replace(/\.0\/24$/, '.1') })
  expect(m.taps()).toEqual([tapName(id)])
  expect(m.vmDirs()).toEqual([id])
  expect(m.ramFiles()).toEqual([`${id}.ram`])
  expect((await m.api('DELETE', `/v1/vms/${id}`)).status).toBe(204)
  expect(m.vmm.vm(id)!.exit).toBeDefined()
  expect([m.taps(), m.vmDirs(), m.ramFiles()]).toEqual([[], [], []])
})

it('a boot the VMM refuses is 500 vm_boot_failed and leaves no row, directory, RAM file, TAP or address', async () => {
  m.vmm.failNextBoot('no such machine type')
  const r = await m.api('POST', '/v1/vms', shape)
  expect(r.status).toBe(500)
  expect(r.body.code).toBe('vm_boot_failed')
  expect(r.body.message).toContain('no such machine type')
  expect((await m.api('GET', '/v1/vms')).body).toEqual([])
  expect([m.taps(), m.vmDirs(), m.ramFiles()]).toEqual([[], [], []])
  // The address went back to the pool: the next VM gets the lowest one again.
  const next = await m.api('POST', '/v1/vms', shape)
  expect(next.body).toMatchObject({ state: 'RUNNING', guestIp: firstAddress() })
  await m.api('DELETE', `/v1/vms/${next.body.id}`)
})

it('an agent that never answers is a boot timeout: 500 vm_boot_failed, the VMM is ended, nothing left', async () => {
  m.vmm.muteNextAgent()
  const r = await m.api('POST', '/v1/vms', shape)
  expect(r.status).toBe(500)
  expect(r.body.code).toBe('vm_boot_failed')
  expect(r.body.message).toMatch(/agent did not answer within 1000 ms/)
  expect(m.vmm.running()).toEqual([])
  expect((await m.api('GET', '/v1/vms')).body).toEqual([])
  expect([m.taps(), m.vmDirs(), m.ramFiles()]).toEqual([[], [], []])
})
