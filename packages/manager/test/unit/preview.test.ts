// Live preview URLs without QEMU: the host name, the token, the header rules, and the front door
// with the real proxy core in front of a real HTTP/WebSocket server on loopback (standing in for
// the guest: the target still comes from the VM record, here one whose address is 127.0.0.1).
import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { createPreviewFront } from '../../src/api/preview/preview-front.ts'
import { envdAccessTokenFor } from '../../src/api/e2b/access-token.ts'
import { allowedSetCookies, stripManagerCookies, upstreamRequestHeaders } from '../../src/api/preview/forwarded-headers.ts'
import { createPreviewHosts } from '../../src/services/previews/preview-host.ts'
import { createPreviewTokens } from '../../src/services/previews/preview-token.ts'
import { createPreviews } from '../../src/services/previews/previews.ts'
import type { VmLookup } from '../../src/services/vm-lookup.ts'
import type { PublicPortsRepo } from '../../src/store/public-ports-repo.ts'
import type { VmRecord } from '../../src/store/vms-repo.ts'
import type { ApiKeys } from '../../src/services/accounts/api-keys.ts'

const VM = '0b7d5c36-5a3e-4c8e-9a43-3c1f2b6b9e01'
const OTHER_VM = '9f0e8d7c-6b5a-4938-8271-605f4e3d2c1b'

describe('preview host names', () => {
  const hosts = createPreviewHosts('localhost')
  it('reads <port>-<vmId>.<domain> with or without the manager port, in any case', () => {
    expect(hosts.parse(`8000-${VM}.localhost:3000`)).toEqual({ kind: 'preview', address: { vmId: VM, port: 8000 } })
    expect(hosts.parse(`8000-${VM.toUpperCase()}.LOCALHOST`)).toEqual({ kind: 'preview', address: { vmId: VM, port: 8000 } })
    expect(hosts.name({ vmId: VM, port: 8000 })).toBe(`8000-${VM}.localhost`)
  })
  it('is not fooled by look-alikes', () => {
    for (const h of ['localhost:3000', `8000-${VM}.localhost.evil.com`, `8000-${VM}.evillocalhost`, `a.8000-${VM}.localhost`, `08000-${VM}.localhost`, `8000-${VM}x.localhost`, `0-${VM}.localhost`, '', undefined]) {
      expect(hosts.parse(h as string).kind, String(h)).toBe('other')
    }
  })
  it('says a port out of range is wrong instead of passing the request to the API', () => {
    expect(hosts.parse(`70000-${VM}.localhost`)).toEqual({ kind: 'bad-port', vmId: VM })
  })
  it('works under a real domain', () => {
    const h = createPreviewHosts('preview.example.com')
    expect(h.parse(`443-${VM}.preview.example.com`)).toEqual({ kind: 'preview', address: { vmId: VM, port: 443 } })
    expect(h.parse(`443-${VM}.example.com`).kind).toBe('other')
  })
})

describe('preview tokens', () => {
  const tokens = createPreviewTokens(crypto.randomBytes(32))
  const exp = Date.now() + 60_000
  it('opens the VM and port it was made for, until it expires', () => {
    const t = tokens.sign(VM, 8000, exp)
    expect(tokens.check(t, VM, 8000)).toBe('ok')
    expect(tokens.check(t, VM, 8000, exp + 1000)).toBe('expired')
  })
  it('opens no other port, no other VM, and nothing under another manager key', () => {
    const t = tokens.sign(VM, 8000, exp)
    expect(tokens.check(t, VM, 8001)).toBe('invalid')
    expect(tokens.check(t, OTHER_VM, 8000)).toBe('invalid')
    expect(createPreviewTokens(crypto.randomBytes(32)).check(t, VM, 8000)).toBe('invalid')
  })
  it('refuses a token whose expiry was edited, and garbage', () => {
    const [e, mac] = tokens.sign(VM, 8000, exp).split('.')
    expect(tokens.check(`${Number(e) + 3600}.${mac}`, VM, 8000)).toBe('invalid')
    for (const bad of ['', '.', 'x.y', `${e}.`, `${e}.${mac}x`, undefined]) expect(tokens.check(bad, VM, 8000)).toBe('invalid')
  })
})

describe('headers crossing the proxy', () => {
  it('never forwards the manager\'s credentials or cookies', () => {
    const h = upstreamRequestHeaders(
      { host: 'x', 'x-api-key': 'k', authorization: 'Bearer k', cookie: 'rds_session=s; app=1; rds_preview=t; RDS_other=2', 'x-forwarded-for': '6.6.6.6', connection: 'keep-alive, x-hop', 'x-hop': '1', accept: '*/*' },
      { remoteAddress: '127.0.0.1', proto: 'http', host: 'x' },
      false,
    )
    expect(h).toEqual({ host: 'x', accept: '*/*', cookie: 'app=1', 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'x' })
    expect(stripManagerCookies('rds_session=1')).toBeUndefined()
  })
  it('drops Set-Cookie that would reach beyond the preview host or name the manager\'s cookies', () => {
    const host = `8000-${VM}.localhost`
    expect(allowedSetCookies(['a=1; Path=/', 'b=2; Domain=localhost', 'c=3; domain=.LOCALHOST; Path=/', `d=4; Domain=${host}`, 'rds_session=evil', 'e=5; HttpOnly'], host)).toEqual(['a=1; Path=/', `d=4; Domain=${host}`, 'e=5; HttpOnly'])
  })
})

describe('the preview front door (real proxy, loopback upstream)', () => {
  const apiKey = 'k'.repeat(32)
  const vms = new Map<string, Partial<VmRecord>>([
    [VM, { id: VM, state: 'RUNNING', guestIp: '127.0.0.1', purpose: 'user' }],
    [OTHER_VM, { id: OTHER_VM, state: 'STOPPED', guestIp: '127.0.0.1', purpose: 'user' }],
  ])
  const lookup = {
    get: async (id: string) => {
      const v = vms.get(id)
      if (!v) throw Object.assign(new Error('nf'), { status: 404 })
      return v as VmRecord
    },
    find: async (id: string) => vms.get(id) as VmRecord | undefined,
  } as unknown as VmLookup
  const open = new Set<string>()
  const publicPorts = {
    isPublic: async (vmId: string, port: number) => open.has(`${vmId}:${port}`),
    set: async (vmId: string, port: number, on: boolean) => void (on ? open.add(`${vmId}:${port}`) : open.delete(`${vmId}:${port}`)),
  } as unknown as PublicPortsRepo
  const tokens = createPreviewTokens(crypto.randomBytes(32))
  const recorded: Array<{ type: string; meta?: Record<string, unknown> }> = []
  const previews = createPreviews({ config: { domain: 'localhost', scheme: 'http', urlPort: 0, tokenTtlSeconds: 600 }, vms: lookup, publicPorts, tokens, hostLink: '127.0.0.1', activity: (e) => void recorded.push(e) })
  const apiKeys = { verify: async () => undefined } as unknown as ApiKeys
  const front = createPreviewFront({ previews, envKey: apiKey, apiKeys, log: { warn: () => {} } })

  let upstream: http.Server
  let upstreamPort = 0
  let deadPort = 0
  let server: http.Server
  let port = 0
  const seen: http.IncomingHttpHeaders[] = []

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      seen.push(req.headers)
      if (req.url === '/upload') {
        let n = 0
        req.on('data', (c: Buffer) => (n += c.length))
        req.on('end', () => res.end(String(n)))
        return
      }
      res.setHeader('set-cookie', ['app=1; Path=/', 'wide=1; Domain=localhost', 'rds_session=evil'])
      res.end(`page ${req.url}`)
    })
    new WebSocketServer({ server: upstream }).on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${m.toString()}`)))
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    upstreamPort = (upstream.address() as AddressInfo).port
    const dead = http.createServer()
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
    deadPort = (dead.address() as AddressInfo).port
    await new Promise<void>((r) => dead.close(() => r()))
    server = http.createServer((req, res) => (front.claims(req) ? front.handle(req, res) : res.end('api')))
    server.on('upgrade', (req, socket, head) => (front.claims(req) ? front.upgrade(req, socket, head) : socket.destroy()))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as AddressInfo).port
  })
  afterAll(async () => {
    server.closeAllConnections()
    upstream.closeAllConnections()
    await new Promise((r) => server.close(r))
    await new Promise((r) => upstream.close(r))
  })

  const hostOf = (p: number, vm = VM) => `${p}-${vm}.localhost:${port}`
  const get = (path: string, headers: Record<string, string>, method = 'GET', body?: Buffer) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      })
      req.on('error', reject)
      req.end(body)
    })

  it('leaves other hosts to the API', async () => {
    expect((await get('/', { host: `localhost:${port}` })).body).toBe('api')
  })

  it('refuses without a credential: JSON for programs, a page for browsers', async () => {
    const r = await get('/', { host: hostOf(upstreamPort) })
    expect(r.status).toBe(401)
    expect(JSON.parse(r.body).code).toBe('preview_unauthorized')
    const page = await get('/', { host: hostOf(upstreamPort), accept: 'text/html' })
    expect(page.status).toBe(401)
    expect(page.body).toContain('<h1>Preview: preview_unauthorized</h1>')
  })

  it('exchanges the url\'s token for a host cookie, then serves with the cookie; the guest sees no manager credential', async () => {
    const { url } = await previews.urlFor(VM, upstreamPort, port)
    const u = new URL(url)
    expect(u.host).toBe(hostOf(upstreamPort))
    const r = await get(`/app?x=1&${u.search.slice(1)}`, { host: u.host })
    expect(r.status).toBe(303)
    expect(r.headers.location).toBe('/app?x=1')
    const cookie = r.headers['set-cookie']![0]!
    expect(cookie).toMatch(/^rds_preview=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/)
    expect(cookie).not.toMatch(/domain/i)
    const ok = await get('/app?x=1', { host: u.host, cookie: `${cookie.split(';')[0]}; rds_session=console; mine=2` })
    expect(ok.status).toBe(200)
    expect(ok.body).toBe('page /app?x=1')
    expect(ok.headers['set-cookie']).toEqual(['app=1; Path=/'])
    const last = seen.at(-1)!
    expect(last.cookie).toBe('mine=2')
    expect(last['x-api-key']).toBeUndefined()
  })

  it('a token or cookie for one port opens no other port and no other VM', async () => {
    const { url } = await previews.urlFor(VM, upstreamPort, port)
    const token = new URL(url).searchParams.get('rds_preview_token')!
    expect((await get(`/?rds_preview_token=${token}`, { host: hostOf(upstreamPort + 1) })).status).toBe(403)
    expect((await get('/', { host: hostOf(upstreamPort + 1), cookie: `rds_preview=${token}` })).status).toBe(401)
    expect((await get('/', { host: hostOf(upstreamPort, OTHER_VM), cookie: `rds_preview=${token}` })).status).toBe(401)
    expect(JSON.parse((await get('/?rds_preview_token=1.abc', { host: hostOf(upstreamPort) })).body).code).toBe('preview_token_invalid')
  })

  it('serves E2B\'s header-addressed sandbox ports: the sandbox\'s envd token or a key, never envd\'s own port', async () => {
    const e2b = (vm: string, p: number | string, extra: Record<string, string> = {}) => ({ host: `localhost:${port}`, 'e2b-sandbox-id': vm, 'e2b-sandbox-port': String(p), ...extra })
    const token = envdAccessTokenFor(apiKey, VM)
    seen.length = 0
    const ok = await get('/from-e2b', e2b(VM, upstreamPort, { 'x-access-token': token }))
    expect(ok).toMatchObject({ status: 200, body: 'page /from-e2b' })
    // The token is a credential of the manager's: the app in the VM never sees it, nor the routing headers.
    expect(seen.at(-1)).not.toHaveProperty('x-access-token')
    expect(seen.at(-1)).not.toHaveProperty('e2b-sandbox-id')
    expect((await get('/', e2b(VM, upstreamPort, { 'x-api-key': apiKey }))).status).toBe(200)
    // Another sandbox's token, none, or a port out of range.
    expect((await get('/', e2b(VM, upstreamPort, { 'x-access-token': envdAccessTokenFor(apiKey, OTHER_VM) }))).status).toBe(401)
    expect((await get('/', e2b(VM, upstreamPort))).status).toBe(401)
    expect((await get('/', e2b(VM, 70000, { 'x-access-token': token }))).status).toBe(400)
    // envd's port and the code interpreter's are the E2B routes' (behind Fastify), not the proxy's, in either addressing.
    for (const port of [49983, 49999]) {
      expect((await get('/', e2b(VM, port, { 'x-access-token': token }))).body).toBe('api')
      expect((await get('/', { host: hostOf(port) })).body).toBe('api')
    }
  })

  it('takes an API key; a wrong one is 401', async () => {
    expect((await get('/k', { host: hostOf(upstreamPort), 'x-api-key': apiKey })).body).toBe('page /k')
    expect((await get('/k', { host: hostOf(upstreamPort), 'x-api-key': 'wrong' })).status).toBe(401)
  })

  it('streams an upload through', async () => {
    const body = crypto.randomBytes(3 * 1024 * 1024)
    const r = await get('/upload', { host: hostOf(upstreamPort), 'x-api-key': apiKey, 'content-type': 'application/octet-stream' }, 'POST', body)
    expect(r.body).toBe(String(body.length))
  })

  it('serves a public port without a credential, and stops when it is closed again', async () => {
    await previews.setPublic(VM, upstreamPort, true)
    expect((await get('/pub', { host: hostOf(upstreamPort) })).body).toBe('page /pub')
    await previews.setPublic(VM, upstreamPort, false)
    await previews.setPublic(VM, upstreamPort, false)
    expect((await get('/pub', { host: hostOf(upstreamPort) })).status).toBe(401)
    // Each change is in the activity log once (setting what is already set records nothing).
    expect(recorded).toEqual([expect.objectContaining({ type: 'vm.port_public', meta: { port: upstreamPort, public: true } }), expect.objectContaining({ type: 'vm.port_public', meta: { port: upstreamPort, public: false } })])
  })

  it('says what is wrong: nothing listening (502), a VM not running (503), a port out of range (400)', async () => {
    const dead = await get('/', { host: hostOf(deadPort), 'x-api-key': apiKey })
    expect(dead.status).toBe(502)
    expect(JSON.parse(dead.body).code).toBe('preview_upstream_unreachable')
    const stopped = await get('/', { host: hostOf(upstreamPort, OTHER_VM), 'x-api-key': apiKey })
    expect(stopped.status).toBe(503)
    expect(JSON.parse(stopped.body).code).toBe('preview_vm_not_running')
    expect((await get('/', { host: `99999-${VM}.localhost`, 'x-api-key': apiKey })).status).toBe(400)
  })

  it('proxies a WebSocket (the token in the query, as a WebSocket client cannot follow a redirect) and refuses one without', async () => {
    const { url } = await previews.urlFor(VM, upstreamPort, port)
    const token = new URL(url).searchParams.get('rds_preview_token')!
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?rds_preview_token=${token}`, { headers: { host: hostOf(upstreamPort) } })
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)))
    const reply = new Promise<string>((r) => ws.once('message', (m) => r(m.toString())))
    ws.send('hi')
    expect(await reply).toBe('echo hi')
    ws.close()
    const refused = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host: hostOf(upstreamPort) } })
    const status = await new Promise<number>((r) => refused.once('unexpected-response', (_req, res) => r(res.statusCode!)))
    expect(status).toBe(401)
  })
})
