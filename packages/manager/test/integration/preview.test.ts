// Live preview URLs on real VMs through the shared manager: a Deno server in the VM serves a page
// and a WebSocket echo at <port>-<vmId>.localhost on the manager's port, opened by the url's token
// (made a host cookie), an API key or a public port; nothing else. A second VM (no server) shows
// that a host name reaches its own VM only and that one VM's token opens nothing of another's.
import { execFile, spawnSync } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { launchBrowser } from '../harness/browser.ts'
import type { ManagerClient } from '../harness/manager-process.ts'
import { PREVIEW_GUEST_SERVER } from '../harness/preview-guest-server.ts'
import { sharedManager } from '../harness/shared-manager.ts'
import { Sandbox } from '../../../sdk/src/index.ts'

let api: ManagerClient
let vmId: string
let otherId: string
let guestIp: string

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** A request to a preview host, sent to the manager's own address (no DNS for *.localhost needed). */
function previewGet(host: string, path: string, headers: Record<string, string> = {}, method = 'GET', body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: api.port, path, method, headers: { host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const hostOf = (port: number, id = vmId) => `${port}-${id}.localhost:${api.port}`

async function urlFor(port: number, id = vmId): Promise<URL> {
  const r = await api.request('GET', `/v1/vms/${id}/ports/${port}/url`)
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return new URL(r.body.url)
}

async function startServer(port: number): Promise<void> {
  const r = await api.request('POST', `/v1/vms/${vmId}/processes`, { args: ['deno', 'run', '--allow-net', '/workspace/preview-server.js', String(port)], tag: `preview-${port}` })
  expect(r.status, JSON.stringify(r.body)).toBe(201)
}

beforeAll(async () => {
  api = await sharedManager()
  // No egress at all: the preview does not go through the VM's egress policy.
  const [a, b] = await Promise.all([api.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] }), api.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [] })])
  if (a.status !== 201 || b.status !== 201) throw new Error(`create failed: ${JSON.stringify([a.body, b.body])}`)
  vmId = a.body.id
  otherId = b.body.id
  guestIp = a.body.guestIp
  await api.writeFile(vmId, '/workspace/preview-server.js', PREVIEW_GUEST_SERVER)
  await startServer(8000)
  await startServer(8001)
  // Deno's first start compiles and caches: wait until both answer through the proxy.
  for (const port of [8000, 8001]) {
    await api.waitFor(`the guest server on ${port}`, async () => ((await previewGet(hostOf(port), '/', { 'x-api-key': api.apiKey })).status === 200 ? true : undefined), 240_000)
  }
}, 600_000)

afterAll(async () => {
  await Promise.all([vmId, otherId].filter(Boolean).map((id) => api.request('DELETE', `/v1/vms/${id}`)))
})

describe('preview URLs (real VM)', () => {
  it('the url names the port and VM under PREVIEW_DOMAIN and carries a token; without it the preview is refused', async () => {
    const u = await urlFor(8000)
    expect(u.host).toBe(hostOf(8000))
    expect(u.searchParams.get('rds_preview_token')).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/)
    const bare = await previewGet(u.host, '/')
    expect(bare.status).toBe(401)
    expect(JSON.parse(bare.body).code).toBe('preview_unauthorized')
    expect((await previewGet(u.host, '/', { accept: 'text/html' })).body).toContain('preview_unauthorized')
  })

  it('token → host cookie → redirect; the cookie serves the page; the app sees no manager credential and cannot set a wider cookie', async () => {
    const u = await urlFor(8000)
    const first = await previewGet(u.host, `/${u.search}`)
    expect(first.status).toBe(303)
    expect(first.headers.location).toBe('/')
    const cookie = first.headers['set-cookie']![0]!.split(';')[0]!
    expect(first.headers['set-cookie']![0]).toMatch(/HttpOnly; SameSite=Lax/)
    const page = await previewGet(u.host, '/', { cookie })
    expect(page.status).toBe(200)
    expect(page.body).toBe('<h1>hello from port 8000</h1>')
    expect(page.headers['set-cookie']).toEqual(['app=1; Path=/'])
    const seen = JSON.parse((await previewGet(u.host, '/headers', { cookie: `${cookie}; rds_session=console; mine=1` })).body)
    expect(seen.cookie).toBe('mine=1')
    expect(seen['x-api-key']).toBeUndefined()
    expect(seen.host).toBe(u.host)
  })

  it('in a real browser (Chromium): the url shows the page, the token leaves the address bar, a host-only cookie opens it again and the page\'s own WebSocket', async () => {
    const browser = await launchBrowser()
    try {
      const page = await browser.newPage()
      // Chromium resolves *.localhost to loopback itself: the url works as handed out.
      await page.goto((await urlFor(8000)).toString())
      expect(page.url()).toBe(`http://${hostOf(8000)}/`)
      expect(await page.textContent('h1')).toBe('hello from port 8000')
      const cookies = await page.context().cookies()
      expect(cookies.find((c) => c.name === 'rds_preview')).toMatchObject({ domain: `8000-${vmId}.localhost`, httpOnly: true, sameSite: 'Lax' })
      expect(cookies.map((c) => c.name).sort()).toEqual(['app', 'rds_preview'])
      await page.reload()
      expect(await page.textContent('h1')).toBe('hello from port 8000')
      // As text: a function would be rewritten by the test's bundler (this file imports `ws` as WebSocket).
      const echo = await page.evaluate(`new Promise((resolve, reject) => {
        const ws = new WebSocket('ws://' + location.host + '/ws')
        ws.onopen = () => ws.send('from the page')
        ws.onmessage = (e) => resolve(String(e.data))
        ws.onerror = () => reject(new Error('the WebSocket failed'))
      })`)
      expect(echo).toBe('echo 8000 from the page')
    } finally {
      await browser.close()
    }
  })

  it('a WebSocket echo through the proxy (token in the query), refused without a credential', async () => {
    const u = await urlFor(8000)
    const ws = new WebSocket(`ws://127.0.0.1:${api.port}/ws${u.search}`, { headers: { host: u.host } })
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)))
    const reply = new Promise<string>((resolve) => ws.once('message', (m) => resolve(m.toString())))
    ws.send('ping')
    expect(await reply).toBe('echo 8000 ping')
    ws.close()
    const refused = new WebSocket(`ws://127.0.0.1:${api.port}/ws`, { headers: { host: u.host } })
    expect(await new Promise<number>((resolve) => refused.once('unexpected-response', (_q, res) => resolve(res.statusCode!)))).toBe(401)
  })

  it('an upload streams through to the guest', async () => {
    const body = Buffer.alloc(4 * 1024 * 1024, 7)
    const r = await previewGet(hostOf(8000), '/upload', { 'x-api-key': api.apiKey, 'content-type': 'application/octet-stream' }, 'POST', body)
    expect(r.body).toBe(String(body.length))
  })

  it('a token opens only the port and VM it names; a host name reaches only its own VM', async () => {
    const u = await urlFor(8000)
    const token = u.searchParams.get('rds_preview_token')!
    // Another port of the same VM (a server runs there too) and the same port of another VM.
    expect((await previewGet(hostOf(8001), `/?rds_preview_token=${token}`)).status).toBe(403)
    expect((await previewGet(hostOf(8001), '/', { cookie: `rds_preview=${token}` })).status).toBe(401)
    expect((await previewGet(hostOf(8000, otherId), `/?rds_preview_token=${token}`)).status).toBe(403)
    // With a key, the other VM's host goes to the other VM, where nothing listens: never to this one.
    const other = await previewGet(hostOf(8000, otherId), '/', { 'x-api-key': api.apiKey })
    expect(other.status).toBe(502)
    expect(JSON.parse(other.body).code).toBe('preview_upstream_unreachable')
    expect((await previewGet(hostOf(8001), '/', { 'x-api-key': api.apiKey })).body).toBe('<h1>hello from port 8001</h1>')
  })

  it('public: served without a token until closed again', async () => {
    const open = await api.request('POST', `/v1/vms/${vmId}/ports/8001/public`, { public: true })
    expect(open.status).toBe(200)
    expect(open.body).toMatchObject({ port: 8001, public: true })
    expect((await previewGet(hostOf(8001), '/')).body).toBe('<h1>hello from port 8001</h1>')
    expect((await previewGet(hostOf(8000), '/')).status).toBe(401)
    expect((await urlFor(8001)).host).toBe(hostOf(8001))
    expect((await api.request('GET', `/v1/vms/${vmId}/ports/8001/url`)).body.public).toBe(true)
    await api.request('POST', `/v1/vms/${vmId}/ports/8001/public`, { public: false })
    expect((await previewGet(hostOf(8001), '/')).status).toBe(401)
  })

  it('the SDK (ports.url, getHost, ports.setPublic) and `sheesh vm url` give the same preview', async () => {
    const sb = await Sandbox.connect(vmId, { baseUrl: api.baseUrl, apiKey: api.apiKey })
    expect(await sb.getHost(8000)).toBe(hostOf(8000))
    const u = new URL((await sb.ports.url(8000)).url)
    expect((await previewGet(u.host, `/${u.search}`)).status).toBe(303)
    expect(await sb.ports.setPublic(8000, false)).toMatchObject({ port: 8000, public: false })
    const bin = path.resolve(import.meta.dirname, '../../../cli/bin/sheesh.mjs')
    const r = spawnSync(process.execPath, [bin, 'vm', 'url', vmId, '8000'], { encoding: 'utf8', env: { ...process.env, RDS_BASE_URL: api.baseUrl, RDS_API_KEY: api.apiKey }, timeout: 120_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(new URL(r.stdout.trim()).host).toBe(hostOf(8000))
  })

  it('validates ports and VMs on the API', async () => {
    expect((await api.request('GET', `/v1/vms/${vmId}/ports/0/url`)).status).toBe(400)
    expect((await api.request('GET', `/v1/vms/${vmId}/ports/65536/url`)).status).toBe(400)
    expect((await api.request('GET', '/v1/vms/00000000-0000-4000-8000-000000000000/ports/80/url')).status).toBe(404)
  })

  it('only the manager\'s user on the host may open connections to a VM (another local user is refused)', async () => {
    const probe = `require('net').connect({ host: '${guestIp}', port: 8000 }).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`
    const run = promisify(execFile)
    // The test runs as the manager's user (root): it may, so the refusal below is the rule's doing.
    expect((await run(process.execPath, ['-e', probe], { timeout: 60_000 })).stdout.trim()).toBe('connected')
    const asNobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', probe], { timeout: 60_000 })
    expect(asNobody.stdout.trim()).toMatch(/^E[A-Z]+$/)
  })

  it('a paused VM answers 503 preview_vm_not_running', async () => {
    expect((await api.request('POST', `/v1/vms/${otherId}/pause`)).status).toBe(204)
    const r = await previewGet(hostOf(8000, otherId), '/', { 'x-api-key': api.apiKey })
    expect(r.status).toBe(503)
    expect(JSON.parse(r.body)).toMatchObject({ code: 'preview_vm_not_running', state: 'PAUSED' })
  })
})
