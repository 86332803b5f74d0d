// Templates on real VMs (the suite's shared manager): files staged and a setup run into a
// snapshot, VMs spawned from it with the files and the setup's result in place, a PUT that
// rebuilds (new VMs see the new result), and a failed setup that reports its output and leaves
// no VM, disk or snapshot behind.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'
import { tarGz } from '../harness/archives.ts'

const BUILD_BOUND_MS = 600_000
const suffix = crypto.randomBytes(3).toString('hex')
const good = `tpl-good-${suffix}`
const broken = `tpl-broken-${suffix}`
const shape = { cpu: 1, memMb: 512 }
const vms: string[] = []
/** Snapshots the VMs spawned here resume from (a replaced build stays while they run). */
const vmsMapping = new Set<string>()
let api: ManagerClient
let storageRoot: string

const settled = (name: string, bound = BUILD_BOUND_MS) =>
  api.waitFor(`template ${name} to finish building`, async () => {
    const r = await api.request('GET', `/v1/templates/${name}`)
    return r.body.status !== 'building' ? r.body : undefined
  }, bound)

async function spawn(name: string, body: Record<string, unknown> = {}): Promise<any> {
  const r = await api.request('POST', `/v1/templates/${name}/vms`, body)
  if (r.status !== 201) throw new Error(`spawn failed: ${r.status} ${JSON.stringify(r.body)}`)
  vms.push(r.body.id)
  vmsMapping.add(r.body.sourceSnapshotId)
  return r.body
}

const templateSnapshots = async () => ((await api.request('GET', '/v1/snapshots?scope=all')).body as Array<{ id: string; kind: string }>).filter((s) => s.kind === 'template').map((s) => s.id)

beforeAll(async () => {
  api = await sharedManager()
  storageRoot = api.storageRoot
})

afterAll(async () => {
  for (const id of vms) await api.request('DELETE', `/v1/vms/${id}`)
  for (const name of [good, broken]) await api.request('DELETE', `/v1/templates/${name}`)
  // Retired builds go once no VM maps them: nothing of this file stays on the shared manager.
  await api.waitFor('the template snapshots removed', async () => ((await templateSnapshots()).length === 0 ? true : undefined), 60_000)
})

describe('a template with files and setup commands', () => {
  let first: any

  it('builds: the staged files unpacked, the setup run as the sandbox user with its env, then ready with a snapshot', async () => {
    const staged = await api.request('PUT', `/v1/templates/${good}/files`, new Uint8Array(tarGz({ 'app/data.txt': 'from-archive\n' })), { 'content-type': 'application/gzip' })
    expect([staged.status, staged.body]).toEqual([200, { staged: true }])
    const r = await api.request('POST', '/v1/templates', {
      name: good,
      ...shape,
      setup: ['cp app/data.txt from-setup.txt', 'echo "$MODE" >> from-setup.txt', 'id -u > setup-uid; echo built by $(whoami)'],
      env: { MODE: 'v1' },
    })
    expect(r.status).toBe(202)
    expect(r.body).toMatchObject({ name: good, status: 'building', hasFiles: true, snapshotId: null })
    first = await settled(good)
    expect(first).toMatchObject({ status: 'ready', error: null })
    expect(first.snapshotId).toMatch(/^snap-/)
    expect(first.setupOutput.map((s: any) => s.exitCode)).toEqual([0, 0, 0])
    expect(first.setupOutput[2].stdout).toBe('built by user\n')
  })

  it('spawns VMs resumed from it, each with the files and the setup\'s result, as distinct machines', async () => {
    const [a, b] = [await spawn(good), await spawn(good, { allowIps: ['203.0.113.9'] })]
    for (const vm of [a, b]) {
      expect(vm).toMatchObject({ state: 'RUNNING', provisionMode: 'snapshot', sourceSnapshotId: first.snapshotId, ...shape })
      const r = await api.exec(vm.id, 'cat app/data.txt from-setup.txt setup-uid; stat -c %u app/data.txt')
      expect(r).toMatchObject({ exitCode: 0, stdout: 'from-archive\nfrom-archive\nv1\n1000\n1000\n' })
    }
    expect(a.guestIp).not.toBe(b.guestIp)
    expect(b.allowIps).toEqual(['203.0.113.9'])
  })

  it('PUT rebuilds: VMs spawned after it see the new result', async () => {
    const r = await api.request('PUT', `/v1/templates/${good}`, { ...shape, setup: ['echo second-build > from-setup.txt'] })
    expect(r.status).toBe(202)
    expect(r.body).toMatchObject({ status: 'building', snapshotId: first.snapshotId })
    const now = await settled(good)
    expect(now.status).toBe('ready')
    expect(now.snapshotId).not.toBe(first.snapshotId)
    const vm = await spawn(good)
    expect(vm.sourceSnapshotId).toBe(now.snapshotId)
    // The files stay part of the template; the old setup's result does not.
    expect((await api.exec(vm.id, 'cat app/data.txt from-setup.txt; test -e setup-uid || echo no-uid')).stdout).toBe('from-archive\nsecond-build\nno-uid\n')
  })
})

describe('a template whose setup fails', () => {
  it('is failed with the error and the output up to the failing command, and leaves nothing behind', async () => {
    const dirsBefore = new Set(fs.readdirSync(path.join(storageRoot, 'vms')))
    const r = await api.request('POST', '/v1/templates', { name: broken, ...shape, setup: ['echo before', 'echo oops >&2; exit 7', 'touch never'] })
    expect(r.status).toBe(202)
    const t = await settled(broken)
    expect(t).toMatchObject({ status: 'failed', snapshotId: null, error: 'setup command 2 exited with 7: echo oops >&2; exit 7' })
    expect(t.setupOutput).toEqual([
      expect.objectContaining({ cmd: 'echo before', exitCode: 0, stdout: 'before\n' }),
      expect.objectContaining({ exitCode: 7, stderr: 'oops\n', timedOut: false }),
    ])
    expect((await api.request('POST', `/v1/templates/${broken}/vms`, {})).body).toMatchObject({ code: 'template_not_ready', status: 'failed' })
    // No build VM (directory, disk) and no snapshot of it. Other files may use the shared manager
    // meanwhile (their seed builds come and go), so this waits for a state without strays.
    const served = new Set(((await api.request('GET', '/v1/templates')).body as Array<{ snapshotId: string | null }>).map((x) => x.snapshotId))
    expect((await templateSnapshots()).filter((id) => !served.has(id) && !vmsMapping.has(id))).toEqual([])
    await api.waitFor('the build VM removed', async () => {
      const users = new Set(((await api.request('GET', '/v1/vms')).body as Array<{ id: string }>).map((v) => v.id))
      return fs.readdirSync(path.join(storageRoot, 'vms')).every((d) => dirsBefore.has(d) || users.has(d)) ? true : undefined
    })
    await api.waitFor('no snapshot directory without a record', async () => {
      const records = new Set(((await api.request('GET', '/v1/snapshots?scope=all')).body as Array<{ id: string }>).map((x) => x.id))
      return fs.readdirSync(path.join(storageRoot, 'snapshots')).every((d) => records.has(d)) ? true : undefined
    })
  })
})
