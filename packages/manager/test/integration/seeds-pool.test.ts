// Fast create by default: the image seed snapshot (built once per image, in the background)
// and the warm pool on top of it. One manager, restarted with other settings between phases so
// the seed is built only once.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setTimeout as sleep } from 'node:timers/promises'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'
import { guestExec } from '../harness/guest-probe.ts'

const SHAPE = { cpu: 1, memMb: 256 }
let mgr: ManagerProcess



async function create(body: Record<string, unknown> = {}): Promise<any> {
  const r = await mgr.request('POST', '/v1/vms', { ...SHAPE, allowIps: [], ...body })
  if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

const vmms = () => qemuProcessesOf(mgr.storageRoot).length
const poolReady = async (n: number) => ((await mgr.request('GET', '/v1/warm-pool')).body.ready === n ? true : undefined)

beforeAll(async () => {
  // One seed per image (the template's): other shapes stay cold here; seeds-shapes.test.ts seeds them.
  mgr = new ManagerProcess({ ENABLE_IMAGE_SEED: 'true', SNAPSHOT_TEMPLATE_CPU: '1', SNAPSHOT_TEMPLATE_MEM_MB: '256', SEED_SHAPES_MAX: '1', VM_SECRET_KEY: 'seed-pool-suite' })
  await mgr.start()
}, 300_000)

afterAll(async () => {
  await mgr?.cleanup()
})

describe('image seed snapshot', () => {
  it('is built in the background and shown on the image', async () => {
    expect(['pending', 'ready', null]).toContain((await mgr.defaultImage()).seedStatus)
    const img = await mgr.waitFor('the seed', async () => {
      const i = await mgr.defaultImage()
      if (i.seedStatus === 'failed') throw new Error(`seed failed: ${i.seedError}`)
      return i.seedStatus === 'ready' ? i : undefined
    })
    expect(img.seedSnapshotId).toMatch(/^snap-/)
    const internal = (await mgr.request('GET', '/v1/snapshots?scope=internal')).body
    expect(internal).toEqual([expect.objectContaining({ id: img.seedSnapshotId, kind: 'image_seed', internal: true, imageId: img.id, ...SHAPE })])
    expect((await mgr.request('GET', '/v1/snapshots')).body).toEqual([])
    // The VM that built it is gone.
    expect(vmms()).toBe(0)
  })

  it('a create of its shape resumes from it; another shape boots cold', async () => {
    const [a, b] = await Promise.all([create(), create({ outboundInternet: true })])
    for (const vm of [a, b]) {
      expect(vm.provisionMode).toBe('snapshot')
      expect(vm.sourceSnapshotId).toBeNull()
      expect((await guestExec(mgr, vm.id, 'ip -4 -o addr show dev eth0')).stdout).toContain(`inet ${vm.guestIp}/`)
    }
    expect(a.guestIp).not.toBe(b.guestIp)
    const seedRandom = await Promise.all([a.id, b.id].map(async (id) => (await guestExec(mgr, id, 'head -c 16 /dev/urandom | od -An -tx1')).stdout))
    expect(seedRandom[0]).not.toBe(seedRandom[1])
    const cold = await create({ memMb: 320 })
    expect(cold.provisionMode).toBe('boot')
    for (const vm of [a, b, cold]) expect((await mgr.request('DELETE', `/v1/vms/${vm.id}`)).status).toBe(204)
    // SEED_SHAPES_MAX=1: no seed is built for the other shape, so a second create of it boots too.
    const again = await create({ memMb: 320 })
    expect(again.provisionMode).toBe('boot')
    expect((await mgr.defaultImage()).seeds.map((s: { memMb: number }) => s.memMb)).toEqual([256])
    expect((await mgr.request('DELETE', `/v1/vms/${again.id}`)).status).toBe(204)
  })
})

describe('image changes', () => {
  it('a new seed is built when the image files change; snapshots of the old files refuse to resume', async () => {
    const img = await mgr.defaultImage()
    const vm = await create()
    const snap = await mgr.request('POST', `/v1/vms/${vm.id}/snapshots`)
    expect(snap.status).toBe(201)
    expect((await mgr.request('DELETE', `/v1/vms/${vm.id}`)).status).toBe(204)
    // The same kernel bytes uploaded again are a new file: the guest cannot resume on it.
    const kernel = fs.readFileSync(path.join(mgr.storageRoot, 'images', img.id, 'vmlinux'))
    const put = await mgr.request('PUT', `/v1/images/${img.id}/kernel`, new Uint8Array(kernel), { 'content-type': 'application/octet-stream' })
    expect(put.status).toBe(204)
    const refused = await mgr.request('POST', '/v1/vms', { ...SHAPE, allowIps: [], snapshotId: snap.body.id })
    expect(refused.status).toBe(409)
    expect(refused.body.code).toBe('snapshot_image_changed')
    const fresh = await mgr.waitFor('the rebuilt seed', async () => {
      const i = await mgr.defaultImage()
      return i.seedStatus === 'ready' && i.seedSnapshotId !== img.seedSnapshotId ? i : undefined
    })
    // The old seed goes right after the new one is recorded.
    await mgr.waitFor('the old seed to go', async () => ((await mgr.request('GET', `/v1/snapshots/${img.seedSnapshotId}`)).status === 404 ? true : undefined), 30_000)
    const again = await create()
    expect(again.provisionMode).toBe('snapshot')
    expect((await mgr.request('DELETE', `/v1/vms/${again.id}`)).status).toBe(204)
    // The image keeps its user snapshot's files resumable only while it exists: deleting it waits for the snapshot.
    const del = await mgr.request('DELETE', `/v1/images/${fresh.id}`)
    expect(del.status).toBe(409)
    expect(del.body.code).toBe('image_has_snapshots')
    expect((await mgr.request('DELETE', `/v1/snapshots/${snap.body.id}`)).status).toBe(204)
  })
})

describe('warm pool', () => {
  it('fills up to WARM_POOL_MAX_VMS (below WARM_POOL_TARGET), hidden from the API', async () => {
    await mgr.stop()
    mgr.setEnv({ ENABLE_WARM_POOL: 'true', WARM_POOL_TARGET: '3', WARM_POOL_MAX_VMS: '1' })
    await mgr.start()
    await mgr.waitFor('the pool', () => poolReady(1))
    expect(vmms()).toBe(1)
    expect((await mgr.request('GET', '/v1/warm-pool')).body).toEqual({ enabled: true, target: 1, ready: 1, starting: 0, refilling: false })
    expect((await mgr.request('GET', '/v1/vms')).body).toEqual([])
  })

  it('hands a warm VM out with the caller\'s policy and secrets, then refills', async () => {
    const vm = await create({ secretEnv: ['POOL_SECRET=mine'], outboundInternet: true })
    expect(vm.provisionMode).toBe('pool')
    expect(vm.outboundInternet).toBe(true)
    expect((await mgr.request('GET', `/v1/vms/${vm.id}/network`)).body.effective).toMatchObject({ egress: 'all' })
    expect((await guestExec(mgr, vm.id, 'echo "[$POOL_SECRET]"')).stdout).toBe('[mine]\n')
    // The pool is the default create path: the user's code in a warm VM is confined as in any
    // other, and one call's environment does not reach the next.
    const who = (await guestExec(mgr, vm.id, 'id -u; grep NoNewPrivs /proc/self/status; cat /proc/self/cgroup; export POOL_SECRET=changed')).stdout
    expect(who).toMatch(/^1000\nNoNewPrivs:\s+1\n/)
    expect(who).toMatch(/^0::\/rds\/exec-[^/\n]+$/m)
    expect((await guestExec(mgr, vm.id, 'echo "[$POOL_SECRET]"')).stdout).toBe('[mine]\n')
    expect((await mgr.request('GET', '/v1/vms')).body.map((v: { id: string }) => v.id)).toEqual([vm.id])
    await mgr.waitFor('the refill', () => poolReady(1))
    expect(vmms()).toBe(2)
    // A create that does not fit the pool's shape leaves the pool alone.
    const other = await create({ memMb: 320 })
    expect(other.provisionMode).toBe('boot')
    expect(vmms()).toBe(3)
  })

  it('survives a manager kill -9: the warm VM is re-attached, not counted twice', async () => {
    await mgr.stop('SIGKILL')
    await mgr.start()
    expect((await mgr.request('GET', '/v1/warm-pool')).body).toMatchObject({ ready: 1, starting: 0 })
    // Give a wrong refill the chance to show; the count must stay.
    await sleep(3000)
    expect(vmms()).toBe(3)
    const vm = await create()
    expect(vm.provisionMode).toBe('pool')
    expect((await guestExec(mgr, vm.id, 'echo ok')).stdout).toBe('ok\n')
  })
})
