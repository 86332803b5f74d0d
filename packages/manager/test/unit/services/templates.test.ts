// Templates on the real services and the fake VMM: a build boots a VM, unpacks the staged files,
// runs the setup as exec does, snapshots it and removes the VM; spawns resume from the snapshot;
// a failed setup leaves nothing; a change rebuilds while the last good build keeps serving; a
// snapshot no template serves goes once no VM maps it; a restart fails an interrupted build.
import fs from 'node:fs'
import zlib from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'
import { tarGz } from '../../harness/archives.ts'

let m: FakeManager
const def = { cpu: 1, memMb: 256, setup: ['echo one > /workspace/one', 'pip install thing'], env: { MODE: 'build' } }

beforeAll(async () => {
  m = await FakeManager.start({ env: { VM_SECRET_KEY: 'k'.repeat(32) } })
})
afterAll(() => m?.close())

const get = async (name: string) => (await m.api('GET', `/v1/templates/${name}`)).body
const settled = (name: string) =>
  m.waitFor(`template ${name} to finish building`, async () => {
    const t = await get(name)
    return t.status !== 'building' && t
  })
const templateSnapshots = async () => ((await m.api('GET', '/v1/snapshots?scope=all')).body as Array<{ id: string; kind: string }>).filter((s) => s.kind === 'template').map((s) => s.id)
const putFiles = (name: string, archive: Buffer) => m.app.inject({ method: 'PUT', url: `/v1/templates/${name}/files`, headers: { 'x-api-key': m.apiKey, 'content-type': 'application/gzip' }, payload: archive })
/** The fake VMs that built templates (purpose template), by the order they booted. */
const buildVms = () => m.vmm.vms().filter((v) => v.origin === 'boot' && v.requests.some((r) => r.startsWith('POST /exec')))

describe('a build', () => {
  let built: any
  it('staged files, then create: 202 building, then ready; the files unpacked and the setup run in order as the sandbox user, with env', async () => {
    const archive = tarGz({ 'app/main.py': 'print(1)\n' })
    const staged = await putFiles('py-app', archive)
    expect([staged.statusCode, staged.json()]).toEqual([200, { staged: true }])
    const seen: any[] = []
    m.vmm.answerExec((req) => (seen.push(req), {}))
    const r = await m.api('POST', '/v1/templates', { name: 'py-app', ...def })
    expect(r.status).toBe(202)
    expect(r.body).toMatchObject({ name: 'py-app', status: 'building', hasFiles: true, snapshotId: null, cpu: 1, memMb: 256, setup: def.setup, allowIps: [] })
    built = await settled('py-app')
    m.vmm.answerExec(undefined)
    expect(built).toMatchObject({ status: 'ready', error: null, builtImageId: m.imageId })
    expect(built.snapshotId).toMatch(/^snap-/)
    expect(built.setupOutput.map((s: any) => [s.cmd, s.exitCode])).toEqual([[def.setup[0], 0], [def.setup[1], 0]])
    const vm = buildVms().at(-1)!
    // Files first (the archive as uploaded, inflated on the way, into /workspace), then the setup, then the guest sync of the snapshot.
    expect(vm.requests.filter((q) => q.startsWith('POST') && q !== 'POST /init').map((q) => q.split('?')[0])).toEqual(['POST /files/upload', 'POST /exec', 'POST /exec', 'POST /exec'])
    expect(new URLSearchParams(vm.uploads[0]!.path.split('?')[1]).get('dest')).toBe('/workspace')
    expect(vm.uploads[0]!.bytes.equals(zlib.gunzipSync(archive))).toBe(true)
    // As the sandbox user (no asRoot), with the template's env.
    expect(seen.slice(0, 2)).toEqual([expect.objectContaining({ cmd: def.setup[0], env: def.env }), expect.objectContaining({ cmd: def.setup[1], env: def.env })])
    expect(seen.some((q) => q.asRoot)).toBe(false)
  })

  it('removes its VM and keeps only the snapshot; activity says created and ready', async () => {
    await m.waitFor('the build VM removed', async () => m.vmm.running().length === 0)
    expect((await m.api('GET', '/v1/vms')).body).toEqual([])
    expect(m.vmDirs()).toEqual([])
    expect(await templateSnapshots()).toEqual([built.snapshotId])
    const types = ((await m.api('GET', '/v1/admin/activity')).body as any[]).filter((e) => e.entityId === 'py-app').map((e) => e.type)
    expect(types).toEqual(['template.ready', 'template.created'])
    expect((await m.api('DELETE', `/v1/snapshots/${built.snapshotId}`)).body.code).toBe('snapshot_in_use')
  })

  it('spawns resume from the snapshot with their own policy and secrets; the template\'s shape and image', async () => {
    const a = await m.api('POST', '/v1/templates/py-app/vms', {})
    const b = await m.api('POST', '/v1/templates/py-app/vms', { allowIps: ['203.0.113.7'], secretEnv: ['TOKEN=abc'] })
    for (const r of [a, b]) {
      expect(r.status).toBe(201)
      expect(r.body).toMatchObject({ state: 'RUNNING', provisionMode: 'snapshot', sourceSnapshotId: built.snapshotId, cpu: 1, memMb: 256, imageId: m.imageId })
      expect(m.vmm.vm(r.body.id)).toMatchObject({ origin: 'restore' })
    }
    expect([a.body.allowIps, b.body.allowIps]).toEqual([[], ['203.0.113.7']])
    expect(m.vmm.vm(a.body.id)!.spec.memory.file).toBe(`${m.root}/snapshots/${built.snapshotId}/memory.raw`)
    for (const r of [a, b]) expect((await m.api('DELETE', `/v1/vms/${r.body.id}`)).status).toBe(204)
  })
  it('keeps its image: deleting the image a template builds on or spawns from is 409 image_in_use naming it', async () => {
    const r = await m.api('DELETE', `/v1/images/${m.imageId}`)
    expect(r.status).toBe(409)
    expect(r.body).toMatchObject({ code: 'image_in_use', message: expect.stringContaining('py-app') })
    expect((await m.api('GET', '/v1/images')).body.map((i: { id: string }) => i.id)).toContain(m.imageId)
  })
})

describe('refusals', () => {
  it('names are validated and unique; unknown names are 404; the body is checked before anything is stored', async () => {
    expect((await m.api('POST', '/v1/templates', { name: 'Bad Name', ...def })).body.code).toBe('invalid_template_name')
    expect((await m.api('POST', '/v1/templates', { name: '../x', ...def })).body.code).toBe('invalid_template_name')
    expect((await m.api('POST', '/v1/templates', { name: 'py-app', ...def })).body.code).toBe('template_exists')
    expect((await m.api('GET', '/v1/templates/nope')).body.code).toBe('template_not_found')
    expect((await m.api('POST', '/v1/templates/nope/vms', {})).body.code).toBe('template_not_found')
    expect((await m.api('POST', '/v1/templates', { name: 'x', ...def, cpu: 999 })).body.code).toBe('invalid_cpu')
    expect((await m.api('POST', '/v1/templates', { name: 'x', ...def, imageId: 'img-nope' })).body.code).toBe('image_not_found')
    expect((await m.api('POST', '/v1/templates', { name: 'x', ...def, allowIps: ['nonsense'] })).body.code).toBe('invalid_allow_ips')
    expect((await m.api('GET', '/v1/templates/x')).status).toBe(404)
    expect((await putFiles('Bad Name', tarGz({ a: 'b' }))).json().code).toBe('invalid_template_name')
  })

  it('a spawn before the first build finished is 409 template_not_ready', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    m.vmm.answerExec(async () => (await gate, {}))
    expect((await m.api('POST', '/v1/templates', { name: 'slow', ...def })).status).toBe(202)
    const r = await m.api('POST', '/v1/templates/slow/vms', {})
    expect([r.status, r.body.code, r.body.status]).toEqual([409, 'template_not_ready', 'building'])
    release()
    m.vmm.answerExec(undefined)
    expect((await settled('slow')).status).toBe('ready')
    expect((await m.api('DELETE', '/v1/templates/slow')).status).toBe(204)
  })
})

describe('a failed setup', () => {
  it('stops at the first failing command: status failed with the error and output, no VM, no snapshot, spawns refused', async () => {
    const before = await templateSnapshots()
    m.vmm.answerExec((req) => (req.cmd === 'make' ? { exitCode: 2, stdout: 'x'.repeat(10_000), stderr: 'make: *** No rule to make target\n' } : {}))
    expect((await m.api('POST', '/v1/templates', { name: 'broken', ...def, setup: ['true', 'make', 'never-run'] })).status).toBe(202)
    const t = await settled('broken')
    m.vmm.answerExec(undefined)
    expect(t).toMatchObject({ status: 'failed', snapshotId: null, builtAt: null })
    expect(t.error).toBe('setup command 2 exited with 2: make')
    expect(t.setupOutput.map((s: any) => [s.cmd, s.exitCode])).toEqual([['true', 0], ['make', 2]])
    expect(t.setupOutput[1].stderr).toContain('No rule to make target')
    // Output is bounded: the end of each stream is kept.
    expect(t.setupOutput[1].stdout.length).toBeLessThanOrEqual(4097)
    await m.waitFor('the build VM removed', async () => m.vmm.running().length === 0)
    expect([m.vmDirs(), m.taps(), await templateSnapshots()]).toEqual([[], [], before])
    expect(fs.readdirSync(`${m.root}/snapshots`).sort()).toEqual(before.sort())
    expect((await m.api('POST', '/v1/templates/broken/vms', {})).body).toMatchObject({ code: 'template_not_ready', status: 'failed' })
    const types = ((await m.api('GET', '/v1/admin/activity')).body as any[]).filter((e) => e.entityId === 'broken').map((e) => e.type)
    expect(types).toEqual(['template.failed', 'template.created'])
  })

  it('a VM that does not boot fails the build the same way', async () => {
    m.vmm.failNextBoot('no kernel today')
    await m.api('PUT', '/v1/templates/broken', { ...def, setup: ['true'] })
    const t = await settled('broken')
    expect(t.status).toBe('failed')
    expect(t.error).toContain('no kernel today')
    expect(m.vmDirs()).toEqual([])
    expect((await m.api('DELETE', '/v1/templates/broken')).status).toBe(204)
  })
})

describe('changes', () => {
  it('PUT rebuilds while the last good build keeps serving; the old snapshot goes when its last VM does', async () => {
    const old = await get('py-app')
    const vm = (await m.api('POST', '/v1/templates/py-app/vms', {})).body
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    m.vmm.answerExec(async (req) => (req.cmd === 'echo two' ? (await gate, {}) : {}))
    const r = await m.api('PUT', '/v1/templates/py-app', { ...def, setup: ['echo two'] })
    expect(r.status).toBe(202)
    expect(r.body).toMatchObject({ status: 'building', snapshotId: old.snapshotId, setup: ['echo two'] })
    // Spawns meanwhile come from the old build.
    const during = await m.api('POST', '/v1/templates/py-app/vms', {})
    expect(during.body.sourceSnapshotId).toBe(old.snapshotId)
    release()
    m.vmm.answerExec(undefined)
    const now = await settled('py-app')
    expect(now.status).toBe('ready')
    expect(now.snapshotId).not.toBe(old.snapshotId)
    expect(now.setupOutput.map((s: any) => s.cmd)).toEqual(['echo two'])
    // Two VMs still map the old snapshot: it stays until they are gone.
    expect((await templateSnapshots()).sort()).toEqual([old.snapshotId, now.snapshotId].sort())
    await m.api('DELETE', `/v1/vms/${vm.id}`)
    expect(await templateSnapshots()).toContain(old.snapshotId)
    await m.api('DELETE', `/v1/vms/${during.body.id}`)
    // Its record and then its files.
    await m.waitFor('the retired snapshot removed', async () => !(await templateSnapshots()).includes(old.snapshotId) && !fs.existsSync(`${m.root}/snapshots/${old.snapshotId}`))
  })

  it('new files rebuild an existing template', async () => {
    const old = await get('py-app')
    const r = await putFiles('py-app', tarGz({ 'v2.txt': '2' }))
    expect(r.json()).toEqual({ staged: false })
    const now = await settled('py-app')
    expect(now.snapshotId).not.toBe(old.snapshotId)
    expect(now.hasFiles).toBe(true)
    expect(buildVms().at(-1)!.uploads).toHaveLength(1)
  })

  it('a new default image rebuilds templates that name no image', async () => {
    const old = await get('py-app')
    const img = await m.s.images.importFiles(
      { kernel: `${m.root}/fake-image/vmlinux`, initrd: `${m.root}/fake-image/initrd`, rootfs: `${m.root}/fake-image/rootfs.ext4` },
      { manifest: {}, name: 'second', description: 'second image' },
    )
    expect((await m.api('POST', `/v1/images/${img.id}/set-default`)).status).toBe(204)
    const now = await m.waitFor('the rebuild on the new default', async () => {
      const t = await get('py-app')
      return t.status === 'ready' && t.builtImageId === img.id && t
    })
    expect(now.snapshotId).not.toBe(old.snapshotId)
    await m.api('POST', `/v1/images/${m.imageId}/set-default`)
    await m.waitFor('the rebuild back on the first image', async () => (await get('py-app')).builtImageId === m.imageId)
  })

  it('DELETE removes the template at once; VMs spawned from it keep running and its snapshot goes after them', async () => {
    const t = await settled('py-app')
    const vm = (await m.api('POST', '/v1/templates/py-app/vms', {})).body
    expect((await m.api('DELETE', '/v1/templates/py-app')).status).toBe(204)
    expect((await m.api('GET', '/v1/templates/py-app')).status).toBe(404)
    expect(fs.existsSync(`${m.root}/templates/py-app.tar.gz`)).toBe(false)
    expect((await m.api('GET', `/v1/vms/${vm.id}`)).body.state).toBe('RUNNING')
    expect(await templateSnapshots()).toEqual([t.snapshotId])
    await m.api('DELETE', `/v1/vms/${vm.id}`)
    await m.waitFor('the snapshot of the deleted template removed', async () => (await templateSnapshots()).length === 0)
    expect((await m.api('GET', '/v1/admin/overview')).body.counts.templates).toBe(0)
  })
})

describe('restarts', () => {
  it('a restart in the middle of a build: its VM is removed at start and the template failed', async () => {
    m.vmm.answerExec(() => new Promise(() => {}))
    expect((await m.api('POST', '/v1/templates', { name: 'cut', ...def })).status).toBe(202)
    const vm = await m.waitFor('the build VM in its setup', async () => m.vmm.vms().find((v) => !v.exit && v.requests.includes('POST /exec')))
    m.vmm.answerExec(undefined)
    await m.restart()
    expect(m.vmm.vm(vm.vmId)!.exit).toBeDefined()
    expect(m.startup.removed).toContain(vm.vmId)
    expect(m.vmDirs()).not.toContain(vm.vmId)
    expect(await get('cut')).toMatchObject({ status: 'failed', snapshotId: null, error: expect.stringContaining('restarted during the build') })
    expect((await m.api('DELETE', '/v1/templates/cut')).status).toBe(204)
  })


  it('a build a restart interrupted is failed at startup; staged files of names never created are dropped', async () => {
    expect((await m.api('POST', '/v1/templates', { name: 'interrupted', ...def })).status).toBe(202)
    await settled('interrupted')
    await putFiles('never-created', tarGz({ a: 'b' }))
    // As a manager that died during a build leaves the row.
    await m.s.db.updateTable('templates').set({ status: 'building' }).where('name', '=', 'interrupted').execute()
    await m.restart()
    const t = await get('interrupted')
    expect(t.status).toBe('failed')
    expect(t.error).toContain('restarted during the build')
    // The last good build still serves.
    expect((await m.api('POST', '/v1/templates/interrupted/vms', {})).status).toBe(201)
    expect(fs.existsSync(`${m.root}/templates/never-created.tar.gz`)).toBe(false)
  })
})
