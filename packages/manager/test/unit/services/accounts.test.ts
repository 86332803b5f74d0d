// Admin login, sessions and minted API keys, on the real services, SQLite and HTTP surface (the
// fake VMM only stands in for QEMU when a VM is created to see its createdBy).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, ConfigError } from '../../../src/config.ts'
import { createAdminSessions } from '../../../src/services/accounts/admin-sessions.ts'
import { FakeManager } from '../../harness/fake-manager.ts'

const EMAIL = 'Admin@Example.com'
const PASSWORD = 'correct horse battery staple'
let m: FakeManager

beforeAll(async () => {
  m = await FakeManager.start({ env: { ADMIN_EMAIL: EMAIL, ADMIN_PASSWORD: PASSWORD, LOGIN_MAX_FAILURES: '3' } })
})
afterAll(() => m?.close())

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
interface As {
  key?: string
  session?: string
  csrf?: string
  from?: string
}

async function call(method: Method, url: string, as: As, body?: unknown) {
  const headers: Record<string, string> = {}
  if (as.key) headers['x-api-key'] = as.key
  if (as.csrf) headers['x-csrf-token'] = as.csrf
  const r = await m.app.inject({ method, url, headers, remoteAddress: as.from ?? '127.0.0.1', ...(as.session ? { cookies: { rds_session: as.session } } : {}), ...(body === undefined ? {} : { payload: body as object }) })
  return { status: r.statusCode, body: r.body ? r.json() : undefined, headers: r.headers, cookies: r.cookies }
}

async function login(from = '127.0.0.1') {
  const r = await call('POST', '/auth/login', { from }, { email: EMAIL, password: PASSWORD })
  expect(r.status).toBe(200)
  const cookie = r.cookies.find((c) => c.name === 'rds_session')!
  return { session: cookie.value, csrf: r.body.csrfToken as string, cookie, body: r.body }
}

describe('login', () => {
  it('answers 401 "Invalid credentials" for a wrong password or email, and sets no cookie', async () => {
    for (const body of [{ email: EMAIL, password: 'wrong password!!' }, { email: 'other@example.com', password: PASSWORD }]) {
      const r = await call('POST', '/auth/login', { from: '10.9.9.1' }, body)
      expect(r).toMatchObject({ status: 401, body: { code: 'invalid_credentials', message: 'Invalid credentials' } })
      expect(r.cookies).toEqual([])
    }
  })

  it('opens a session: an httpOnly SameSite=Strict cookie ending with it, the email and a CSRF token; /auth/me answers the same', async () => {
    const { cookie, body, session } = await login()
    expect(body).toEqual({ email: EMAIL, csrfToken: expect.any(String), expiresAt: expect.any(String) })
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' })
    expect(cookie.secure).toBeFalsy() // plain HTTP here; Secure when the request came over TLS
    // Cookie dates have whole seconds.
    expect(new Date(cookie.expires!).getTime()).toBe(Math.floor(Date.parse(body.expiresAt) / 1000) * 1000)
    // The email is matched without regard to case, as addresses are.
    expect((await call('POST', '/auth/login', {}, { email: EMAIL.toLowerCase(), password: PASSWORD })).status).toBe(200)
    const me = await call('GET', '/auth/me', { session })
    expect(me).toMatchObject({ status: 200, body: { email: EMAIL, csrfToken: body.csrfToken } })
    // The original's sentence for a missing session, with our stable code beside it.
    expect(await call('GET', '/auth/me', {})).toMatchObject({ status: 401, body: { code: 'unauthorized', message: 'Unauthorized' } })
    expect((await call('GET', '/auth/me', { session: 'not-a-session' })).status).toBe(401)
  })

  it('keeps only hashes: the cookie value is not in the database', async () => {
    const { session } = await login()
    const rows = await m.s.db.selectFrom('admin_sessions').selectAll().execute()
    expect(JSON.stringify(rows)).not.toContain(session)
  })

  it('refuses a client after LOGIN_MAX_FAILURES failures, even with the right password, with Retry-After; others may still log in', async () => {
    const from = '10.9.9.2'
    for (let i = 0; i < 3; i++) expect((await call('POST', '/auth/login', { from }, { email: EMAIL, password: `wrong-${i}-password` })).status).toBe(401)
    const r = await call('POST', '/auth/login', { from }, { email: EMAIL, password: PASSWORD })
    expect(r).toMatchObject({ status: 429, body: { code: 'login_rate_limited', retryAfterSeconds: expect.any(Number) } })
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0)
    await login('10.9.9.3')
  })

  it('ends a session at logout, which needs the CSRF token', async () => {
    const { session, csrf } = await login()
    expect((await call('POST', '/auth/logout', { session })).body).toMatchObject({ code: 'csrf_token_invalid' })
    expect((await call('GET', '/auth/me', { session })).status).toBe(200)
    const out = await call('POST', '/auth/logout', { session, csrf })
    expect(out).toMatchObject({ status: 200, body: { ok: true } })
    expect(out.cookies.find((c) => c.name === 'rds_session')?.value).toBe('')
    expect((await call('GET', '/auth/me', { session })).status).toBe(401)
    expect((await call('GET', '/v1/vms', { session })).status).toBe(401)
  })

  it('ends a session idle for SESSION_IDLE_MINUTES or past its absolute end', async () => {
    const idle = await login()
    const old = await login()
    const longAgo = new Date(Date.now() - 121 * 60_000).toISOString()
    const past = new Date(Date.now() - 1000).toISOString()
    const rows = await m.s.db.selectFrom('admin_sessions').select(['id_hash', 'created_at']).orderBy('created_at', 'desc').execute()
    expect(rows.length).toBeGreaterThanOrEqual(2)
    // Time passing, as the database sees it: the two newest sessions are the two above.
    await m.s.db.updateTable('admin_sessions').set({ last_seen_at: longAgo }).where('id_hash', '=', rows[1]!.id_hash).execute()
    await m.s.db.updateTable('admin_sessions').set({ expires_at: past }).where('id_hash', '=', rows[0]!.id_hash).execute()
    expect((await call('GET', '/auth/me', { session: idle.session })).status).toBe(401)
    expect((await call('GET', '/auth/me', { session: old.session })).status).toBe(401)
    const left = await m.s.db.selectFrom('admin_sessions').select('id_hash').where('id_hash', 'in', [rows[0]!.id_hash, rows[1]!.id_hash]).execute()
    expect(left).toEqual([])
  })

  it('survives a manager restart (sessions live in the database)', async () => {
    const { session, csrf } = await login()
    await m.restart()
    expect((await call('GET', '/auth/me', { session })).body).toMatchObject({ email: EMAIL, csrfToken: csrf })
  })
})

describe('the API with a session', () => {
  it('reads with the cookie alone; changes state only with the CSRF token; records the admin as creator', async () => {
    const { session, csrf } = await login()
    expect((await call('GET', '/v1/vms', { session })).status).toBe(200)
    const refused = await call('POST', '/v1/vms', { session }, { cpu: 1, memMb: 256, allowIps: [] })
    expect(refused).toMatchObject({ status: 403, body: { code: 'csrf_token_invalid' } })
    expect((await call('POST', '/v1/vms', { session, csrf: `${csrf}x` }, { cpu: 1, memMb: 256, allowIps: [] })).status).toBe(403)
    expect((await call('GET', '/v1/vms', { key: m.apiKey })).body).toEqual([])
    const made = await call('POST', '/v1/vms', { session, csrf }, { cpu: 1, memMb: 256, allowIps: [] })
    expect(made).toMatchObject({ status: 201, body: { createdBy: `admin:${EMAIL}` } })
    expect((await call('DELETE', `/v1/vms/${made.body.id}`, { session, csrf })).status).toBe(204)
  })

  it('a wrong X-API-Key is 401 even beside a valid session', async () => {
    const { session } = await login()
    expect((await call('GET', '/v1/vms', { session, key: 'rds_000000000000_wrongwrongwrongwrongwrongwrongwr' })).status).toBe(401)
  })
})

describe('minted API keys', () => {
  it('only an admin session mints, lists and revokes keys; an API key cannot', async () => {
    expect((await call('POST', '/v1/admin/api-keys', { key: m.apiKey }, { name: 'ci' })).body).toMatchObject({ code: 'session_required' })
    expect((await call('GET', '/v1/admin/api-keys', { key: m.apiKey })).status).toBe(403)
    expect((await call('POST', '/v1/admin/api-keys/key-x/revoke', { key: m.apiKey })).status).toBe(403)
  })

  it('a minted key is shown once, stored hashed, works as X-API-Key, records itself as creator and its last use, and stops at revocation', async () => {
    const admin = await login()
    const minted = await call('POST', '/v1/admin/api-keys', admin, { name: '  workflow  ' })
    expect(minted.status).toBe(201)
    const { apiKey, id, prefix } = minted.body
    expect(apiKey).toMatch(/^rds_[0-9a-f]{12}_[A-Za-z0-9_-]{32}$/)
    expect(apiKey.startsWith(`${prefix}_`)).toBe(true)
    expect(minted.body).toMatchObject({ name: 'workflow', createdBy: `admin:${EMAIL}`, revokedAt: null, lastUsedAt: null, expiresAt: null })

    const listed = await call('GET', '/v1/admin/api-keys', admin)
    expect(listed.body.find((k: { id: string }) => k.id === id)).not.toHaveProperty('apiKey')
    expect(JSON.stringify(listed.body)).not.toContain(apiKey.slice(prefix.length + 1))
    const stored = await m.s.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    expect(stored.hash).toMatch(/^scrypt\$/)
    expect(JSON.stringify(stored)).not.toContain(apiKey.slice(prefix.length + 1))

    const made = await call('POST', '/v1/vms', { key: apiKey }, { cpu: 1, memMb: 256, allowIps: [] })
    expect(made).toMatchObject({ status: 201, body: { createdBy: `key:${id}` } })
    // The key may use the API, never mint keys.
    expect((await call('POST', '/v1/admin/api-keys', { key: apiKey }, { name: 'more' })).status).toBe(403)
    const used = (await call('GET', '/v1/admin/api-keys', admin)).body.find((k: { id: string }) => k.id === id)
    expect(Date.parse(used.lastUsedAt)).toBeGreaterThan(Date.parse(used.createdAt) - 1)

    // A key with the right prefix and a wrong secret is no key.
    expect((await call('GET', '/v1/vms', { key: `${prefix}_${'A'.repeat(32)}` })).status).toBe(401)

    const revoked = await call('POST', `/v1/admin/api-keys/${id}/revoke`, admin)
    expect(revoked).toMatchObject({ status: 200, body: { id, revokedAt: expect.any(String) } })
    expect((await call('GET', '/v1/vms', { key: apiKey })).status).toBe(401)
    expect((await call('DELETE', `/v1/vms/${made.body.id}`, { key: m.apiKey })).status).toBe(204)
  })

  it('mints a key in E2B\'s shape (e2b_ and 40 hex) that works the same, also on the E2B control plane', async () => {
    const admin = await login()
    const minted = await call('POST', '/v1/admin/api-keys', admin, { name: 'e2b scripts', format: 'e2b' })
    expect(minted.status).toBe(201)
    const { apiKey, id, prefix } = minted.body
    expect(apiKey).toMatch(/^e2b_[0-9a-f]{40}$/)
    expect(prefix).toBe(apiKey.slice(0, 16))
    const stored = await m.s.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    expect(JSON.stringify(stored)).not.toContain(apiKey.slice(16))
    expect((await call('GET', '/v1/vms', { key: apiKey })).status).toBe(200)
    expect((await call('GET', '/v2/sandboxes', { key: apiKey })).status).toBe(200)
    // The right prefix with another secret is no key; nor is a shape of neither kind.
    expect((await call('GET', '/v1/vms', { key: `${prefix}${'0'.repeat(28)}` })).status).toBe(401)
    expect((await call('POST', '/v1/admin/api-keys', admin, { name: 'x', format: 'aws' })).status).toBe(400)
    await call('POST', `/v1/admin/api-keys/${id}/revoke`, admin)
    expect((await call('GET', '/v1/vms', { key: apiKey })).status).toBe(401)
  })

  it('expiresAt must be a future date-time; an expired key is refused', async () => {
    const admin = await login()
    expect((await call('POST', '/v1/admin/api-keys', admin, { name: 'x', expiresAt: 'tomorrow' })).body).toMatchObject({ code: 'invalid_expires_at' })
    expect((await call('POST', '/v1/admin/api-keys', admin, { name: 'x', expiresAt: new Date(Date.now() - 1000).toISOString() })).status).toBe(400)
    const soon = await call('POST', '/v1/admin/api-keys', admin, { name: 'short-lived', expiresAt: new Date(Date.now() + 3_600_000).toISOString() })
    expect(soon.status).toBe(201)
    expect((await call('GET', '/v1/vms', { key: soon.body.apiKey })).status).toBe(200)
    await m.s.db.updateTable('api_keys').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('id', '=', soon.body.id).execute()
    expect((await call('GET', '/v1/vms', { key: soon.body.apiKey })).status).toBe(401)
  })

  it('revoking an unknown key is 404 api_key_not_found; a name is required', async () => {
    const admin = await login()
    expect((await call('POST', '/v1/admin/api-keys/key-nope/revoke', admin)).body).toMatchObject({ code: 'api_key_not_found', message: 'Not found' })
    expect((await call('POST', '/v1/admin/api-keys', admin, { name: '   ' })).body).toMatchObject({ code: 'bad_request', message: 'name is required' })
  })
})

describe('configuration', () => {
  it('no admin login at all without ADMIN_PASSWORD', async () => {
    const off = createAdminSessions({ config: loadConfig({}).admin, repo: undefined as never, activity: () => {} })
    expect(off.enabled).toBe(false)
    await expect(off.login(EMAIL, PASSWORD, '127.0.0.1')).rejects.toMatchObject({ status: 403, code: 'admin_login_disabled' })
    expect(await off.resolve('anything')).toBeUndefined()
  })

  it('ADMIN_PASSWORD needs ADMIN_EMAIL and at least 12 characters', () => {
    expect(() => loadConfig({ ADMIN_PASSWORD: PASSWORD })).toThrow(ConfigError)
    expect(() => loadConfig({ ADMIN_EMAIL: EMAIL, ADMIN_PASSWORD: 'short' })).toThrow(/at least 12/)
    expect(loadConfig({ ADMIN_EMAIL: EMAIL }).admin.adminEmail).toBeUndefined()
  })
})
