// TTL, expiry and labels with real VMs: a VM whose TTL runs out is deleted (its VMM gone), one
// created with onExpire "pause" is paused and resumes where it was, an extend keeps a VM alive
// past its first deadline, labels find VMs; and a VM that expires while its manager is down is
// deleted when the manager starts again. The first part shares the suite's manager (creates
// resume from its image seed); the restart needs a manager of its own.
import crypto from 'node:crypto'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf, type ManagerClient } from '../harness/manager-process.ts'
import { sharedManager, VM_ORIGINS } from '../harness/shared-manager.ts'

const TTL = 10

/** Whether a VMM of this VM runs (the -name marker ends with the VM's id). */
const vmmOf = (storageRoot: string, vmId: string) =>
  qemuProcessesOf(storageRoot).some((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`:${vmId}`)
    } catch {
      return false
    }
  })
const shape = VM_ORIGINS[0].shape

describe('on a running manager', () => {
  let api: ManagerClient
  const suite = `ttl-${crypto.randomBytes(4).toString('hex')}`
  const vms: Record<'gone' | 'paused' | 'extended', any> = {} as never

  beforeAll(async () => {
    api = await sharedManager()
    const create = async (role: string, extra: object) => {
      const r = await api.request('POST', '/v1/vms', { ...shape, allowIps: [], ttlSeconds: TTL, labels: { suite, role }, ...extra })
      if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
      return r.body
    }
    vms.gone = await create('gone', {})
    vms.paused = await create('paused', { onExpire: 'pause' })
    vms.extended = await create('extended', {})
    const r = await api.request('POST', `/v1/vms/${vms.extended.id}/extend`, { ttlSeconds: 600 })
    expect(r.status).toBe(200)
    vms.extended = r.body
  })

  afterAll(async () => {
    for (const vm of Object.values(vms)) if (vm) await api.request('DELETE', `/v1/vms/${vm.id}`)
  })

  it('labels are shown and find the VMs (repeatable label= is AND)', async () => {
    expect(vms.gone).toMatchObject({ labels: { suite, role: 'gone' }, ttlSeconds: TTL, onExpire: 'delete', expiresAt: expect.any(String) })
    const ids = async (q: string) => ((await api.request('GET', `/v1/vms?${q}`)).body as Array<{ id: string }>).map((v) => v.id).sort()
    // The first VM may be gone already: its 10 s run from its create.
    expect((await ids(`label=suite=${suite}`)).filter((id) => id !== vms.gone.id)).toEqual([vms.paused.id, vms.extended.id].sort())
    expect(await ids(`label=suite=${suite}&label=role=paused`)).toEqual([vms.paused.id])
  })

  it('a VM whose TTL ran out is deleted, VMM and all; onExpire pause pauses; an extended one runs on', async () => {
    await api.waitFor('the expired VM to be deleted', async () => ((await api.request('GET', `/v1/vms/${vms.gone.id}`)).status === 404 ? true : undefined), 120_000)
    expect(vmmOf(api.storageRoot, vms.gone.id)).toBe(false)
    const paused = await api.waitFor('the VM to be paused on expiry', async () => {
      const r = await api.request('GET', `/v1/vms/${vms.paused.id}`)
      return r.body.state === 'PAUSED' ? r.body : undefined
    }, 120_000)
    expect(paused.expiresAt).toBeNull()
    const extended = (await api.request('GET', `/v1/vms/${vms.extended.id}`)).body
    expect(extended).toMatchObject({ state: 'RUNNING', ttlSeconds: 600, expiresAt: vms.extended.expiresAt })
    expect((await api.exec(vms.extended.id, 'echo alive')).stdout).toBe('alive\n')
  })

  it('the paused VM resumes where it was, with a fresh clock', async () => {
    await api.waitFor('the pause', async () => ((await api.request('GET', `/v1/vms/${vms.paused.id}`)).body.state === 'PAUSED' ? true : undefined), 120_000)
    // Its TTL from now on: the resume runs the clock for this long.
    expect((await api.request('POST', `/v1/vms/${vms.paused.id}/extend`, { ttlSeconds: 600 })).status).toBe(200)
    expect((await api.request('POST', `/v1/vms/${vms.paused.id}/resume`)).status).toBe(204)
    const vm = (await api.request('GET', `/v1/vms/${vms.paused.id}`)).body
    expect(vm).toMatchObject({ state: 'RUNNING', ttlSeconds: 600 })
    expect(Date.parse(vm.expiresAt) - Date.now()).toBeGreaterThan(500_000)
    expect((await api.exec(vms.paused.id, 'echo resumed')).stdout).toBe('resumed\n')
  })
})

describe('the SDK and the CLI', () => {
  it('list by labels, extend (setTimeout), set labels; sheesh vm ls --label and vm extend', async () => {
    const api = await sharedManager()
    const client = { baseUrl: api.baseUrl, apiKey: api.apiKey }
    const suite = `ttl-${crypto.randomBytes(4).toString('hex')}`
    const sb = await Sandbox.create({ ...client, ...shape, ttlSeconds: 600, onExpire: 'pause', labels: { suite } })
    try {
      expect(sb.info).toMatchObject({ ttlSeconds: 600, onExpire: 'pause', labels: { suite } })
      expect((await Sandbox.list({ ...client, labels: { suite } })).map((v) => v.id)).toEqual([sb.id])
      expect(await Sandbox.list({ ...client, labels: { suite, role: null } })).toEqual([])
      expect(await sb.setTimeout(900_000)).toMatchObject({ ttlSeconds: 900 })
      expect((await sb.setLabels({ role: 'sdk' })).labels).toEqual({ suite, role: 'sdk' })

      const { NODE_OPTIONS: _, ...outer } = process.env as Record<string, string>
      const env = { ...outer, RDS_BASE_URL: api.baseUrl, RDS_API_KEY: api.apiKey, XDG_CONFIG_HOME: path.join(process.env.TMPDIR ?? '/tmp', 'no-sheesh-config') }
      const sheesh = (...args: string[]) => spawnSync(process.execPath, [path.resolve(import.meta.dirname, '../../../cli/bin/sheesh.mjs'), ...args], { encoding: 'utf8', env, timeout: 120_000 })
      const ls = sheesh('vm', 'ls', '--label', `suite=${suite}`, '--label', 'role=sdk', '--json')
      expect(ls.status, ls.stderr).toBe(0)
      expect(JSON.parse(ls.stdout).map((v: { id: string }) => v.id)).toEqual([sb.id])
      const ext = sheesh('vm', 'extend', sb.id, '1200')
      expect(ext.status, ext.stderr).toBe(0)
      expect(ext.stdout).toContain(`${sb.id} expires at `)
      expect((await sb.refresh()).ttlSeconds).toBe(1200)
      expect(sheesh('vm', 'create', '--ttl', 'soon').status).toBe(2)
    } finally {
      await sb.delete()
    }
  })
})

describe('across a manager restart', () => {
  let mgr: ManagerProcess
  beforeAll(async () => {
    mgr = new ManagerProcess()
    await mgr.start()
  })
  afterAll(async () => {
    for (const vm of (await mgr.request('GET', '/v1/vms')).body ?? []) await mgr.request('DELETE', `/v1/vms/${vm.id}`)
    await mgr.cleanup()
  })

  it('a VM that expires while the manager is down is deleted when it starts again', async () => {
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], ttlSeconds: TTL })
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    await mgr.stop('SIGKILL')
    // The VMM outlives the manager; its deadline passes while nothing watches it.
    expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(1)
    await sleep(Math.max(0, Date.parse(r.body.expiresAt) - Date.now()) + 1000)
    await mgr.start()
    await mgr.waitFor('the VM to be deleted', async () => ((await mgr.request('GET', `/v1/vms/${r.body.id}`)).status === 404 ? true : undefined), 120_000)
    expect(qemuProcessesOf(mgr.storageRoot)).toHaveLength(0)
  })
})
