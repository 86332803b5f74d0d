// The activity log on the real services (fake VMM): every state change and who made it, no
// secret value in it, paging, pruning, the live stream over a real socket, and the overview.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeManager } from '../../harness/fake-manager.ts'

const EMAIL = 'ops@example.com'
const PASSWORD = 'a long enough password'
const SECRET = 'sk-live-0123456789abcdef'
let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ env: { ADMIN_EMAIL: EMAIL, ADMIN_PASSWORD: PASSWORD, VM_SECRET_KEY: 'k'.repeat(32) } })
})
afterAll(() => m?.close())

const activity = async (limit = 200) => (await m.api('GET', `/v1/admin/activity?limit=${limit}`)).body as Array<Record<string, any>>
/** Entries about one entity, oldest first. */
const about = async (id: string) => (await activity()).filter((e) => e.entityId === id).reverse()

describe('what is recorded', () => {
  it('a VM\'s life, each step by the key that asked', async () => {
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    for (const verb of ['pause', 'resume', 'stop', 'start']) expect((await m.api('POST', `/v1/vms/${vm.id}/${verb}`)).status).toBe(204)
    expect((await m.api('PATCH', `/v1/vms/${vm.id}/network`, { allowIps: ['203.0.113.7'] })).status).toBe(200)
    expect((await m.api('DELETE', `/v1/vms/${vm.id}`)).status).toBe(204)
    const entries = await about(vm.id)
    expect(entries.map((e) => e.type)).toEqual(['vm.started', 'vm.created', 'vm.paused', 'vm.resumed', 'vm.stopped', 'vm.started', 'vm.network_updated', 'vm.deleted'])
    expect(new Set(entries.map((e) => e.actor))).toEqual(new Set(['env:API_KEY']))
    expect(entries[1]).toMatchObject({ entityType: 'vm', meta: { cpu: 1, memMb: 256 }, metaJson: expect.any(String) })
    expect(entries[6]!.meta).toEqual({ allowIps: ['203.0.113.7'], allowDomains: [], outboundInternet: false })
    expect(entries.every((e) => /^\d+$/.test(e.id) && !Number.isNaN(Date.parse(e.createdAt)))).toBe(true)
  })

  it('a VM that dies on its own is vm.failed, by the system', async () => {
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    await m.vmm.crash(vm.id)
    await m.waitForState(vm.id, 'ERROR')
    const failed = (await about(vm.id)).find((e) => e.type === 'vm.failed')
    expect(failed).toMatchObject({ actor: 'system', meta: { error: expect.any(String) } })
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('runs are recorded with the command, secret values masked, and never their output', async () => {
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], secretEnv: [`TOKEN=${SECRET}`] })
    expect((await m.api('POST', `/v1/vms/${vm.id}/exec`, { cmd: `curl -H "Authorization: ${SECRET}" https://api.example.com` })).status).toBe(200)
    expect((await m.api('POST', `/v1/vms/${vm.id}/run-ts`, { code: 'result.set(1)' })).status).toBe(200)
    const entries = await about(vm.id)
    const exec = entries.find((e) => e.type === 'exec.command')!
    expect(exec.meta).toMatchObject({ exitCode: 0, timedOut: false })
    expect(exec.meta.cmd).toContain('curl -H "Authorization: ')
    expect(entries.find((e) => e.type === 'runTs.executed')!.meta).toMatchObject({ hasInlineCode: true, exitCode: 0 })
    expect(JSON.stringify(await activity())).not.toContain(SECRET)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })

  it('logins, failed logins, keys and what a session does are the admin\'s', async () => {
    const bad = await m.app.inject({ method: 'POST', url: '/auth/login', payload: { email: EMAIL, password: 'not the password' }, remoteAddress: '10.1.2.3' })
    expect(bad.statusCode).toBe(401)
    const login = await m.app.inject({ method: 'POST', url: '/auth/login', payload: { email: EMAIL, password: PASSWORD } })
    const session = login.cookies.find((c) => c.name === 'rds_session')!.value
    const headers = { 'x-csrf-token': login.json().csrfToken }
    const minted = await m.app.inject({ method: 'POST', url: '/v1/admin/api-keys', cookies: { rds_session: session }, headers, payload: { name: 'ci' } })
    const keyId = minted.json().id
    await m.app.inject({ method: 'POST', url: `/v1/admin/api-keys/${keyId}/revoke`, cookies: { rds_session: session }, headers })
    const vm = (await m.app.inject({ method: 'POST', url: '/v1/vms', cookies: { rds_session: session }, headers, payload: { cpu: 1, memMb: 256, allowIps: [] } })).json()
    await m.app.inject({ method: 'POST', url: '/auth/logout', cookies: { rds_session: session }, headers })

    const all = await activity()
    expect(all.find((e) => e.type === 'auth.login_failed')).toMatchObject({ actor: 'anonymous', meta: { client: '10.1.2.3' } })
    expect(all.find((e) => e.type === 'auth.login')).toMatchObject({ actor: `admin:${EMAIL}` })
    expect(all.find((e) => e.type === 'apikey.created' && e.entityId === keyId)).toMatchObject({ actor: `admin:${EMAIL}`, meta: { name: 'ci' } })
    expect(all.find((e) => e.type === 'apikey.revoked' && e.entityId === keyId)).toMatchObject({ actor: `admin:${EMAIL}` })
    expect((await about(vm.id)).map((e) => [e.type, e.actor])).toEqual([['vm.started', `admin:${EMAIL}`], ['vm.created', `admin:${EMAIL}`]])
    expect(all.find((e) => e.type === 'auth.logout')).toMatchObject({ actor: `admin:${EMAIL}` })
    expect(JSON.stringify(all)).not.toContain(PASSWORD)
    expect(JSON.stringify(all)).not.toContain(minted.json().apiKey)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })
})

describe('reading it', () => {
  it('pages newest first with limit and before', async () => {
    const first = await activity(3)
    expect(first).toHaveLength(3)
    expect(Number(first[0]!.id)).toBeGreaterThan(Number(first[2]!.id))
    const next = (await m.api('GET', `/v1/admin/activity?limit=3&before=${first[2]!.id}`)).body
    expect(Number(next[0].id)).toBeLessThan(Number(first[2]!.id))
    expect((await m.api('GET', '/v1/admin/activity?before=abc')).status).toBe(400)
  })

  it('prunes by age and by count', async () => {
    const before = (await activity()).length
    const oldest = (await activity()).at(-1)!
    await m.s.db.updateTable('activity').set({ created_at: new Date(Date.now() - 31 * 86_400_000).toISOString() }).where('id', '=', Number(oldest.id)).execute()
    await m.s.activity.prune()
    const after = await activity()
    expect(after).toHaveLength(before - 1)
    expect(after.some((e) => e.id === oldest.id)).toBe(false)
  })

  it('the overview counts VMs and reads the host', async () => {
    const { counts, cpu } = (await m.api('GET', '/v1/admin/overview')).body
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    const o = (await m.api('GET', '/v1/admin/overview')).body
    expect(o.counts).toMatchObject({ activeVms: counts.activeVms + 1, runningVms: counts.runningVms + 1 })
    expect(o.cpu).toMatchObject({ capacityCores: expect.any(Number), usedCores: cpu.usedCores + 1 })
    expect(o.memory.capacityBytes).toBeGreaterThan(o.memory.usedBytes)
    expect(o.memory.guestBytes).toBe(o.cpu.usedCores * 256 * 1024 * 1024)
    expect(o.storage.capacityBytes).toBeGreaterThan(0)
    expect(o.warmPool).toMatchObject({ enabled: false })
    await m.api('DELETE', `/v1/vms/${vm.id}`)
  })
})

describe('the live stream', () => {
  let base: string
  beforeAll(async () => {
    await m.app.listen({ port: 0, host: '127.0.0.1' })
    base = `http://127.0.0.1:${(m.app.server.address() as AddressInfo).port}`
  })

  /** Opens the stream and collects its events until `count` arrived. */
  function events(headers: Record<string, string>, count: number): { done: Promise<Array<{ id: string; data: any }>>; close: () => void } {
    let req: http.ClientRequest
    const done = new Promise<Array<{ id: string; data: any }>>((resolve, reject) => {
      req = http.get(`${base}/v1/admin/events`, { headers: { 'x-api-key': m.apiKey, ...headers } }, (res) => {
        expect(res.headers['content-type']).toContain('text/event-stream')
        // Written by hand (hijacked), yet with the headers the app's hooks set.
        expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
        let buf = ''
        const got: Array<{ id: string; data: any }> = []
        res.on('data', (c: Buffer) => {
          buf += c.toString('utf8')
          let at: number
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, at)
            buf = buf.slice(at + 2)
            const id = /^id: (.*)$/m.exec(block)?.[1]
            const data = /^data: (.*)$/m.exec(block)?.[1]
            if (id && data) got.push({ id, data: JSON.parse(data) })
            if (got.length === count) {
              req.destroy()
              resolve(got)
            }
          }
        })
      })
      req.on('error', (e) => (e.message.includes('aborted') || e.message.includes('socket hang up') ? undefined : reject(e)))
    })
    return { done, close: () => req.destroy() }
  }

  it('sends each new entry as it is written, and replays what was missed after Last-Event-ID', async () => {
    const live = events({}, 2)
    await new Promise((r) => setTimeout(r, 100))
    const { body: vm } = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    const got = await live.done
    expect(got.map((e) => e.data.type)).toEqual(['vm.started', 'vm.created'])
    expect(got[1]!.data).toMatchObject({ entityId: vm.id, actor: 'env:API_KEY' })

    // While no one listens: a stop and a delete. A client resuming after the create sees both.
    await m.api('POST', `/v1/vms/${vm.id}/stop`)
    await m.api('DELETE', `/v1/vms/${vm.id}`)
    const resumed = await events({ 'last-event-id': got[1]!.id }, 2).done
    expect(resumed.map((e) => e.data.type)).toEqual(['vm.stopped', 'vm.deleted'])
    expect(Number(resumed[0]!.id)).toBeGreaterThan(Number(got[1]!.id))
  })

  it('needs a key or a session', async () => {
    const status = await new Promise<number>((resolve) => http.get(`${base}/v1/admin/events`, (res) => resolve(res.statusCode!)).on('error', () => resolve(0)))
    expect(status).toBe(401)
  })
})
