// TTL, expiry and labels on the real services (fake VMM): the reaper's scheduling (it sleeps
// until the earliest deadline the database holds and wakes sooner when an earlier one is set),
// what an expiry does in each state, the clock rules of pause/resume/stop/start, restarts, races
// with the caller's own verbs, and labels with their SQL filter.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ env: { MAX_TTL_SECONDS: '86400', DEFAULT_TTL_SECONDS: '3600' } })
})
afterAll(() => m?.close())

const create = async (extra: Record<string, unknown> = {}) => {
  const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], ...extra })
  expect(r.status, JSON.stringify(r.body)).toBe(201)
  return r.body
}
const get = async (id: string) => (await m.api('GET', `/v1/vms/${id}`)).body
const activityOf = async (id: string) => ((await m.api('GET', '/v1/admin/activity?limit=500')).body as Array<Record<string, any>>).filter((e) => e.entityId === id).reverse()
/** A moment well after every deadline of this file: expire() called with it finds any VM with a clock due. */
const later = () => Date.now() + 10 * 86_400_000
const secondsLeft = (vm: { expiresAt: string }) => (Date.parse(vm.expiresAt) - Date.now()) / 1000

describe('TTL on create', () => {
  it('a VM with a short TTL is deleted when it runs out, by the system, with vm.expired', async () => {
    const vm = await create({ ttlSeconds: 1 })
    expect(vm).toMatchObject({ ttlSeconds: 1, onExpire: 'delete', expiresAt: expect.any(String) })
    await m.waitFor('the VM to be gone', async () => (await m.api('GET', `/v1/vms/${vm.id}`)).status === 404)
    const entries = await activityOf(vm.id)
    expect(entries.map((e) => e.type)).toEqual(expect.arrayContaining(['vm.expired', 'vm.deleted']))
    expect(entries.find((e) => e.type === 'vm.expired')).toMatchObject({ actor: 'system', meta: { onExpire: 'delete', ttlSeconds: 1, state: 'RUNNING' } })
    expect(m.taps()).not.toContain(`vm${vm.id.replace(/-/g, '').slice(0, 12)}`)
    expect(m.vmDirs()).not.toContain(vm.id)
  })

  it('without ttlSeconds a VM gets DEFAULT_TTL_SECONDS; null and over MAX_TTL_SECONDS are refused', async () => {
    const vm = await create()
    expect(vm.ttlSeconds).toBe(3600)
    expect(secondsLeft(vm)).toBeGreaterThan(3500)
    expect((await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], ttlSeconds: 86401 })).body).toMatchObject({ code: 'ttl_too_large', maxTtlSeconds: 86400 })
    expect((await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], ttlSeconds: null })).body).toMatchObject({ code: 'ttl_too_large' })
    for (const bad of [0, -5, 1.5, '60']) {
      const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], ttlSeconds: bad })
      expect(r.status).toBe(400)
      expect(r.body.code).toBe(typeof bad === 'string' ? 'validation_failed' : 'invalid_ttl')
    }
    expect((await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], onExpire: 'stop' })).body).toMatchObject({ code: 'validation_failed' })
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })
})

describe('the reaper', () => {
  it('sleeps until the earliest deadline and wakes sooner when an earlier one is set', async () => {
    const a = await create({ ttlSeconds: 7200 })
    const b = await create({ ttlSeconds: 5000 })
    expect(m.s.expiry.nextWake()).toBeLessThanOrEqual(Date.parse(b.expiresAt))
    const extended = (await m.api('POST', `/v1/vms/${a.id}/extend`, { ttlSeconds: 1000 })).body
    expect(m.s.expiry.nextWake()).toBe(Date.parse(extended.expiresAt))
    // A later deadline leaves the earlier wake as it is (nothing polls; it re-reads the next one when it wakes).
    await m.api('POST', `/v1/vms/${b.id}/extend`, { ttlSeconds: 80000 })
    expect(m.s.expiry.nextWake()).toBe(Date.parse(extended.expiresAt))
    for (const v of [a, b]) await m.api('DELETE', `/v1/vms/${v.id}`)
  })

  it('an expiry checks the deadline again under the VM\'s lock: an extend that came first wins', async () => {
    const vm = await create({ ttlSeconds: 600 })
    expect(await m.s.vms.expire(vm.id, Date.now())).toBeUndefined()
    expect((await get(vm.id)).state).toBe('RUNNING')
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('an expiry racing the caller\'s delete ends quietly either way', async () => {
    for (let i = 0; i < 3; i++) {
      const vm = await create({ ttlSeconds: 600 })
      const [expired, removed] = await Promise.allSettled([m.s.vms.expire(vm.id, later()), m.s.vms.remove(vm.id)])
      expect(expired.status).toBe('fulfilled')
      if (removed.status === 'rejected') expect(removed.reason).toMatchObject({ code: 'vm_not_found' })
      expect((await m.api('GET', `/v1/vms/${vm.id}`)).status).toBe(404)
    }
  })

  it('handles at start what expired while the manager was down', async () => {
    const vm = await create({ ttlSeconds: 1 })
    const kept = await create({ ttlSeconds: 3600 })
    await m.restart(async () => {
      await sleep(Math.max(0, Date.parse(vm.expiresAt) - Date.now()) + 50)
    })
    await m.waitFor('the expired VM to be gone', async () => (await m.api('GET', `/v1/vms/${vm.id}`)).status === 404)
    expect(await get(kept.id)).toMatchObject({ state: 'RUNNING', expiresAt: kept.expiresAt })
    await m.api('DELETE', `/v1/vms/${kept.id}`)
  })
})

describe('onExpire: pause and the clock', () => {
  it('pauses a running VM and stops its clock; a resume runs it again for the whole TTL', async () => {
    const vm = await create({ ttlSeconds: 1, onExpire: 'pause' })
    const paused = await m.waitForState(vm.id, 'PAUSED')
    expect(paused).toMatchObject({ expiresAt: null, ttlSeconds: 1, onExpire: 'pause' })
    expect((await activityOf(vm.id)).map((e) => e.type)).toEqual(expect.arrayContaining(['vm.expired', 'vm.paused']))
    expect((await m.api('POST', `/v1/vms/${vm.id}/extend`, { ttlSeconds: 3600 })).status).toBe(200)
    expect((await m.api('POST', `/v1/vms/${vm.id}/pause`)).status).toBe(409)
    expect((await m.api('POST', `/v1/vms/${vm.id}/resume`)).status).toBe(204)
    const resumed = await get(vm.id)
    expect(resumed).toMatchObject({ state: 'RUNNING', ttlSeconds: 3600 })
    expect(secondsLeft(resumed)).toBeGreaterThan(3500)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('a caller\'s pause stops the clock; a stop does not; a start of a VM without a clock runs it again', async () => {
    const vm = await create({ ttlSeconds: 3600, onExpire: 'pause' })
    await m.api('POST', `/v1/vms/${vm.id}/pause`)
    expect((await get(vm.id)).expiresAt).toBeNull()
    await m.api('POST', `/v1/vms/${vm.id}/resume`)
    const running = await get(vm.id)
    expect(running.expiresAt).not.toBeNull()
    await m.api('POST', `/v1/vms/${vm.id}/stop`)
    expect((await get(vm.id)).expiresAt).toBe(running.expiresAt)
    // A stopped VM whose time runs out with onExpire pause costs nothing already: only its clock stops.
    expect(await m.s.vms.expire(vm.id, later())).toMatchObject({ action: 'clock_stopped' })
    expect(await get(vm.id)).toMatchObject({ state: 'STOPPED', expiresAt: null })
    await m.api('POST', `/v1/vms/${vm.id}/start`)
    const started = await get(vm.id)
    expect(started.state).toBe('RUNNING')
    expect(secondsLeft(started)).toBeGreaterThan(3500)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('a VM in ERROR is stopped on expiry with onExpire pause, and deleted with delete', async () => {
    const p = await create({ ttlSeconds: 3600, onExpire: 'pause' })
    const d = await create({ ttlSeconds: 3600 })
    for (const v of [p, d]) {
      await m.vmm.crash(v.id)
      await m.waitForState(v.id, 'ERROR')
    }
    expect(await m.s.vms.expire(p.id, later())).toMatchObject({ action: 'stopped' })
    expect(await get(p.id)).toMatchObject({ state: 'STOPPED', expiresAt: null })
    expect(await m.s.vms.expire(d.id, later())).toMatchObject({ action: 'deleted' })
    expect((await m.api('GET', `/v1/vms/${d.id}`)).status).toBe(404)
    await m.api('DELETE', `/v1/vms/${p.id}`)
  })
})

describe('extend', () => {
  it('sets the deadline from now, also on a VM without TTL, and answers the VM; checks like create', async () => {
    const vm = await create({ ttlSeconds: 60 })
    const r = await m.api('POST', `/v1/vms/${vm.id}/extend`, { ttlSeconds: 7200 })
    expect(r).toMatchObject({ status: 200, body: { id: vm.id, ttlSeconds: 7200, state: 'RUNNING' } })
    expect(secondsLeft(r.body)).toBeGreaterThan(7100)
    expect((await m.api('POST', `/v1/vms/${vm.id}/extend`, { ttlSeconds: 0 })).body).toMatchObject({ code: 'invalid_ttl' })
    expect((await m.api('POST', `/v1/vms/${vm.id}/extend`, { ttlSeconds: 90000 })).body).toMatchObject({ code: 'ttl_too_large' })
    expect((await m.api('POST', `/v1/vms/${vm.id}/extend`, {})).body).toMatchObject({ code: 'validation_failed' })
    expect((await m.api('POST', '/v1/vms/00000000-0000-4000-8000-000000000000/extend', { ttlSeconds: 60 })).body).toMatchObject({ code: 'vm_not_found' })
    expect((await activityOf(vm.id)).find((e) => e.type === 'vm.extended')).toMatchObject({ actor: 'env:API_KEY', meta: { ttlSeconds: 7200 } })
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })
})

describe('labels', () => {
  it('are kept, shown, filtered in SQL (repeatable = AND; key alone = any value) and changed by PUT and PATCH', async () => {
    const a = await create({ labels: { team: 'red', 'example.com/task': 'build-1' } })
    const b = await create({ labels: { team: 'red', tier: 'gpu' } })
    const c = await create({ labels: { team: 'blue' } })
    expect(a.labels).toEqual({ team: 'red', 'example.com/task': 'build-1' })
    expect((await get(a.id)).labels).toEqual(a.labels)
    const ids = async (q: string) => ((await m.api('GET', `/v1/vms?${q}`)).body as Array<{ id: string }>).map((v) => v.id).filter((id) => [a.id, b.id, c.id].includes(id)).sort()
    expect(await ids('label=team=red')).toEqual([a.id, b.id].sort())
    expect(await ids('label=team=red&label=tier=gpu')).toEqual([b.id])
    expect(await ids('label=tier')).toEqual([b.id])
    expect(await ids(`label=${encodeURIComponent('example.com/task=build-1')}`)).toEqual([a.id])
    expect(await ids('label=team=green')).toEqual([])
    expect((await m.api('GET', '/v1/vms?label=bad%20key=x')).body).toMatchObject({ code: 'invalid_labels' })

    const patched = await m.api('PATCH', `/v1/vms/${b.id}/labels`, { tier: null, owner: 'ana' })
    expect(patched).toMatchObject({ status: 200, body: { labels: { team: 'red', owner: 'ana' } } })
    expect(await ids('label=tier')).toEqual([])
    const replaced = await m.api('PUT', `/v1/vms/${b.id}/labels`, { only: 'this' })
    expect(replaced.body.labels).toEqual({ only: 'this' })
    expect(await ids('label=team=red')).toEqual([a.id])
    expect((await m.api('PUT', '/v1/vms/00000000-0000-4000-8000-000000000000/labels', {})).body).toMatchObject({ code: 'vm_not_found' })
    for (const v of [a, b, c]) await m.api('DELETE', `/v1/vms/${v.id}`)
    // A deleted VM's labels go with it.
    expect(await m.s.db.selectFrom('vm_labels').selectAll().where('vm_id', 'in', [a.id, b.id, c.id]).execute()).toEqual([])
  })

  it('are validated with invalid_labels naming the problem', async () => {
    const bad = async (labels: unknown) => (await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], labels })).body
    expect(await bad({ '-x': 'v' })).toMatchObject({ code: 'invalid_labels', message: expect.stringContaining('"-x"') })
    expect(await bad({ ['a'.repeat(64)]: 'v' })).toMatchObject({ code: 'invalid_labels' })
    expect(await bad({ 'Upper.Case/x': 'v' })).toMatchObject({ code: 'invalid_labels', message: expect.stringContaining('prefix') })
    expect(await bad({ k: 'v'.repeat(257) })).toMatchObject({ code: 'invalid_labels', message: expect.stringContaining('256') })
    expect(await bad({ k: 'line\nbreak' })).toMatchObject({ code: 'invalid_labels', message: expect.stringContaining('control') })
    expect(await bad(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])))).toMatchObject({ code: 'invalid_labels', message: expect.stringContaining('32') })
    expect(await bad({ k: 5 })).toMatchObject({ code: 'validation_failed' })
    const vm = await create({ labels: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v'])) })
    // The limit counts what the VM ends up with.
    expect((await m.api('PATCH', `/v1/vms/${vm.id}/labels`, { one: 'more' })).body).toMatchObject({ code: 'invalid_labels' })
    expect(Object.keys((await get(vm.id)).labels)).toHaveLength(32)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })
})
