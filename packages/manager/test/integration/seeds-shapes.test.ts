// Seeds for every shape users create: the first create of a shape boots cold and has a seed
// built for it, the next resumes. At most SEED_SHAPES_MAX seeds per image (here 2: the template
// and one other), the least recently used other shape giving way; seeds outlive a restart.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ManagerProcess } from '../harness/manager-process.ts'
import { guestExec } from '../harness/guest-probe.ts'

/** The default SNAPSHOT_TEMPLATE_CPU / _MEM_MB: the manager below does not set them. */
const TEMPLATE = { cpu: 1, memMb: 256 }
const A = { cpu: 1, memMb: 320 }
const B = { cpu: 1, memMb: 288 }
type Shape = { cpu: number; memMb: number }
let mgr: ManagerProcess



const seedOf = (img: any, shape: Shape) => img.seeds.find((s: Shape) => s.cpu === shape.cpu && s.memMb === shape.memMb)

async function seedReady(shape: Shape): Promise<any> {
  return mgr.waitFor(`the seed of ${shape.cpu}/${shape.memMb}`, async () => {
    const seed = seedOf(await mgr.defaultImage(), shape)
    if (seed?.status === 'failed') throw new Error(`seed failed: ${seed.error}`)
    return seed?.status === 'ready' ? seed : undefined
  })
}

async function create(shape: Shape): Promise<any> {
  const r = await mgr.request('POST', '/v1/vms', { ...shape, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

async function remove(id: string): Promise<void> {
  expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
}

beforeAll(async () => {
  mgr = new ManagerProcess({ ENABLE_IMAGE_SEED: 'true', SEED_SHAPES_MAX: '2' })
  await mgr.start()
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
})

let resumedFromA: any
let seedA: any

it('seeds the template shape, 1 vCPU / 256 MiB by default, at start', async () => {
  const seed = await seedReady(TEMPLATE)
  const img = await mgr.defaultImage()
  expect(img.seeds).toEqual([{ ...TEMPLATE, status: 'ready', snapshotId: expect.stringMatching(/^snap-/), error: null, updatedAt: expect.any(String), lastUsedAt: expect.any(String) }])
  // The original's per-image fields describe the template's seed.
  expect(img).toMatchObject({ seedStatus: 'ready', seedSnapshotId: seed.snapshotId, seedError: null })
})

it('boots the first create of a new shape, seeds it in the background, and resumes the next one', async () => {
  const first = await create(A)
  expect(first.provisionMode).toBe('boot')
  seedA = await seedReady(A)
  expect(seedA.snapshotId).toMatch(/^snap-/)
  const internal = (await mgr.request('GET', `/v1/snapshots/${seedA.snapshotId}`)).body
  expect(internal).toMatchObject({ kind: 'image_seed', internal: true, ...A })
  await remove(first.id)

  const t0 = performance.now()
  resumedFromA = await create(A)
  const ms = Math.round(performance.now() - t0)
  expect(resumedFromA).toMatchObject({ provisionMode: 'snapshot', sourceSnapshotId: null, ...A })
  expect((await guestExec(mgr, resumedFromA.id, 'echo ok')).stdout).toBe('ok\n')
  console.log(`second create of ${A.cpu} vCPU / ${A.memMb} MiB: provisionMode ${resumedFromA.provisionMode}, ${ms} ms`)
  // A resume is a use: it moves the shape away from being dropped next.
  expect(seedOf(await mgr.defaultImage(), A).lastUsedAt > seedA.lastUsedAt).toBe(true)
})

it('drops the least recently used other shape when a third would exceed SEED_SHAPES_MAX=2; its snapshot goes once no VM maps it', async () => {
  const first = await create(B)
  expect(first.provisionMode).toBe('boot')
  await seedReady(B)
  const img = await mgr.waitFor('the seed of A to be dropped', async () => {
    const i = await mgr.defaultImage()
    return seedOf(i, A) ? undefined : i
  })
  expect(img.seeds.map((s: Shape & { status: string }) => [s.cpu, s.memMb, s.status])).toEqual([[1, 256, 'ready'], [1, 288, 'ready']])
  // The VM resumed from A's seed still maps its memory: the snapshot stays until it lets go.
  const dir = path.join(mgr.storageRoot, 'snapshots', seedA.snapshotId)
  expect((await mgr.request('GET', `/v1/snapshots/${seedA.snapshotId}`)).status).toBe(200)
  expect(fs.existsSync(path.join(dir, 'memory.raw'))).toBe(true)
  expect((await guestExec(mgr, resumedFromA.id, 'echo still')).stdout).toBe('still\n')
  await remove(resumedFromA.id)
  // The row goes first, then the files (a crash in between leaves a directory the next start removes).
  const gone = async () => (await mgr.request('GET', `/v1/snapshots/${seedA.snapshotId}`)).status === 404 && !fs.existsSync(dir)
  await mgr.waitFor('the dropped seed snapshot to go', async () => ((await gone()) ? true : undefined), 60_000)
  expect((await mgr.request('GET', '/v1/snapshots?scope=internal')).body.map((s: { id: string }) => s.id).sort()).toEqual(img.seeds.map((s: { snapshotId: string }) => s.snapshotId).sort())
  await remove(first.id)
})

it('keeps the seeds across a manager restart: the next create of a seeded shape resumes', async () => {
  const before = (await mgr.defaultImage()).seeds
  await mgr.stop()
  await mgr.start()
  expect((await mgr.defaultImage()).seeds).toEqual(before)
  const vm = await create(B)
  expect(vm.provisionMode).toBe('snapshot')
  expect((await guestExec(mgr, vm.id, 'echo ok')).stdout).toBe('ok\n')
  await remove(vm.id)
})

it('a seed that fails to resume costs the create a cold boot, not an error, and is rebuilt', async () => {
  const broken = seedOf(await mgr.defaultImage(), B)
  fs.truncateSync(path.join(mgr.storageRoot, 'snapshots', broken.snapshotId, 'state.bin'), 1000)
  const vm = await create(B)
  expect(vm.provisionMode).toBe('boot')
  expect((await guestExec(mgr, vm.id, 'echo ok')).stdout).toBe('ok\n')
  expect(seedOf(await mgr.defaultImage(), B).snapshotId).not.toBe(broken.snapshotId)
  await remove(vm.id)
  // The restart forgot which image files were tried, so the shape is built once more.
  const rebuilt = await seedReady(B)
  expect(rebuilt.snapshotId).not.toBe(broken.snapshotId)
  await mgr.waitFor('the broken seed snapshot to go', async () => ((await mgr.request('GET', `/v1/snapshots/${broken.snapshotId}`)).status === 404 ? true : undefined), 60_000)
})
