// The container deployment, for real: deploy/build.sh builds the images (Debian root filesystem
// made on this host, no registry), deploy/podman-stack.ts starts compose.yaml with Podman, and
// through Caddy (TLS with its local CA) a VM is created, runs `echo hi` and is deleted. Then the
// stack goes down and nothing it made may be left on the host: containers, volumes, the delegated
// cgroups, and none of the manager's network namespaces, links or nft tables (the manager made
// those inside its container's network namespace, which must keep them off the host).
import { execFileSync, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import https from 'node:https'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { instanceOf } from '../../src/runtime/reclaim/instance-mark.ts'

const REPO = path.resolve(import.meta.dirname, '../../../..')
const NODE = process.execPath
const PROJECT = `rds-deploy-${process.pid}`
const API_KEY = crypto.randomBytes(16).toString('hex')
const CGROUP_DIR = `/sys/fs/cgroup/${PROJECT}`
/** The instance name of the manager in the container (from its STORAGE_ROOT): its resources carry it. */
const CONTAINER_INSTANCE = instanceOf('/var/lib/run-dat-sheesh')

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

const lines = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, { encoding: 'utf8' }).stdout.split('\n').map((l) => l.trim()).filter(Boolean)

/** What the host has that a container stack could leave behind. */
function hostState(): Set<string> {
  const state = new Set<string>()
  for (const l of lines('ip', ['netns', 'list'])) state.add(`netns ${l.split(' ')[0]}`)
  for (const l of lines('nft', ['list', 'tables'])) state.add(`nft ${l}`)
  for (const l of lines('ip', ['-o', 'link', 'show'])) state.add(`link ${l.split(':')[1]?.trim().split('@')[0]}`)
  for (const e of fs.readdirSync('/dev/shm')) state.add(`shm ${e}`)
  for (const l of lines('podman', ['ps', '-a', '--format', '{{.Names}}'])) state.add(`container ${l}`)
  for (const l of lines('podman', ['volume', 'ls', '--format', '{{.Name}}'])) state.add(`volume ${l}`)
  for (const l of lines('podman', ['network', 'ls', '--format', '{{.Name}}'])) state.add(`network ${l}`)
  for (const c of ['memory', 'cpu', 'pids', '']) {
    const dir = path.join('/sys/fs/cgroup', c)
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (e.startsWith('rds')) state.add(`cgroup ${c}/${e}`)
  }
  for (const l of lines('pgrep', ['-a', 'qemu-system'])) state.add(`qemu ${l}`)
  // Podman's helpers per container: the monitor and the user-mode network.
  for (const name of ['conmon', 'slirp4netns']) for (const l of lines('pgrep', ['-a', '-x', name])) state.add(`proc ${l}`)
  return state
}

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: any }

describe('container deployment (Podman, Caddy in front)', () => {
  let httpsPort = 0
  let httpPort = 0
  let ca = ''
  let before = new Set<string>()
  let stackUp = false
  // The stack's settings come from this environment only (compose.yaml interpolates it).
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(ADMIN_|VM_SECRET_KEY$|LOG_LEVEL$|RDS_(?!CACHE_DIR$|OCI_RUNTIME$))/.test(k)))

  const stack = (verb: string, ...extra: string[]) =>
    execFileSync(NODE, [path.join(REPO, 'deploy/podman-stack.ts'), verb, '--project', PROJECT, ...extra], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

  function request(method: string, p: string, body?: unknown, headers: Record<string, string> = { 'x-api-key': API_KEY }): Promise<Reply> {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: httpsPort, servername: 'localhost', ca, method, path: p,
        // Caddy serves the site by name (RDS_DOMAIN=localhost); any other Host gets an empty 200.
        headers: { host: `localhost:${httpsPort}`, ...headers, ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}) },
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          let parsed: unknown = text
          try { parsed = text ? JSON.parse(text) : undefined } catch { /* not JSON: keep the text */ }
          resolve({ status: res.statusCode!, headers: res.headers, body: parsed })
        })
      })
      req.on('error', reject)
      req.end(data)
    })
  }

  /** Caddy has made its local CA (kept in its volume) and the manager answers through it. */
  async function untilAnswering(): Promise<void> {
    for (let i = 0; !ca; i++) {
      const r = spawnSync('podman', ['exec', `${PROJECT}-caddy`, 'cat', '/data/caddy/pki/authorities/local/root.crt'], { encoding: 'utf8' })
      if (r.status === 0 && r.stdout.includes('BEGIN CERTIFICATE')) ca = r.stdout
      else if (i > 300) throw new Error(`caddy has no local CA: ${r.stderr}`)
      else await sleep(500)
    }
    for (let i = 0; ; i++) {
      const r = await request('GET', '/v1/vms').catch((err: Error) => ({ status: 0, body: err.message, headers: {} }))
      if (r.status === 200) return
      if (i > 600) throw new Error(`the manager never answered through caddy: ${r.status} ${JSON.stringify(r.body)}\n${spawnSync('podman', ['logs', '--tail', '40', `${PROJECT}-manager`], { encoding: 'utf8' }).stderr}`)
      await sleep(500)
    }
  }

  beforeAll(async () => {
    before = hostState()
    httpsPort = await freePort()
    httpPort = await freePort()
    Object.assign(env, {
      API_KEY, VMM_ACCEL: 'tcg', ENABLE_IMAGE_SEED: 'false', ENABLE_WARM_POOL: 'false',
      RDS_HTTPS_BIND: `127.0.0.1:${httpsPort}`, RDS_HTTP_BIND: `127.0.0.1:${httpPort}`,
      RDS_CGROUP_DIR: CGROUP_DIR, RDS_RAM_SIZE: '2g', RDS_REQUEST_MAX_SIZE: '64KB',
    })
    let t = Date.now()
    const built = execFileSync('sh', [path.join(REPO, 'deploy/build.sh')], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    console.log(`deploy: images built in ${((Date.now() - t) / 1000).toFixed(1)} s: ${built.trim().split('\n').join(', ')}`)

    t = Date.now()
    // Set first: an up that fails half-way (one container started) is taken down too.
    stackUp = true
    stack('up')
    await untilAnswering()
    console.log(`deploy: stack up and answering in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  })

  afterAll(() => {
    // Normally done by the last test already; again here so a failed test leaves nothing either.
    if (stackUp) spawnSync(NODE, [path.join(REPO, 'deploy/podman-stack.ts'), 'down', '--project', PROJECT, '--volumes'], { env, stdio: 'inherit' })
  })

  it('serves the API over TLS through Caddy only, with the key', async () => {
    const anon = await request('GET', '/v1/vms', undefined, {})
    expect(anon.status).toBe(401)
    const listed = await request('GET', '/v1/vms')
    expect(listed.status).toBe(200)
    expect(listed.body).toEqual([])
    // Caddy removes its Server header and adds HSTS.
    expect(listed.headers.server).toBeUndefined()
    expect(listed.headers['strict-transport-security']).toMatch(/max-age=/)
    // Plain HTTP is redirected to HTTPS.
    const plain = await new Promise<http.IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port: httpPort, path: '/v1/vms', headers: { host: 'localhost' } }, resolve).on('error', reject))
    plain.resume()
    expect(plain.statusCode).toBe(308)
    expect(plain.headers.location).toMatch(/^https:\/\/localhost\/v1\/vms/)
    // The manager's own port is published nowhere: only Caddy's two are.
    const published = lines('podman', ['port', `${PROJECT}-manager`]).map((l) => l.split(' ')[0]).sort()
    expect(published).toEqual(['443/tcp', '80/tcp'])
  })

  it('refuses a request body over the proxy limit before the manager reads it', async () => {
    // The stack runs with RDS_REQUEST_MAX_SIZE=64KB. Under it the manager gets the body and refuses
    // it (a string where cpu is a number: 400); over it Caddy cuts the body off: 413, or 502 when Caddy 2.6 notices
    // only while streaming it upstream, or a reset connection. Never the manager's 400.
    const body = (n: number) => Buffer.from(JSON.stringify({ cpu: 'x'.repeat(n), memMb: 256, allowIps: [], outboundInternet: false }))
    const under = await request('POST', '/v1/vms', body(32 * 1024))
    expect(under.status).toBe(400)
    const over = await request('POST', '/v1/vms', body(200 * 1024)).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }))
    expect([413, 502, 0], JSON.stringify(over.body)).toContain(over.status)
    if (over.status === 0) expect(String(over.body)).toMatch(/ECONNRESET|EPIPE|socket hang up/)
    expect((await request('GET', '/v1/vms')).body).toEqual([])
  })

  let vmId = ''

  it('creates a VM and runs echo hi in it', async () => {
    const created = await request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], outboundInternet: false })
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    vmId = created.body.id as string
    expect(created.body.state).toBe('RUNNING')
    // Its QEMU runs confined in the container, in a cgroup below the subtree delegated to the manager.
    const qemu = lines('pgrep', ['-f', `rds:${CONTAINER_INSTANCE}:${vmId}`])
    expect(qemu).toHaveLength(1)
    expect(fs.readFileSync(`/proc/${qemu[0]}/cgroup`, 'utf8')).toContain(`:/${PROJECT}/rds-${CONTAINER_INSTANCE}/vm-${vmId}\n`)
    const ran = await request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo hi' })
    expect(ran.status, JSON.stringify(ran.body)).toBe(200)
    expect(ran.body).toMatchObject({ exitCode: 0, stdout: 'hi\n' })
    const wrote = await request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo kept > /workspace/upgrade.txt' })
    expect(wrote.body).toMatchObject({ exitCode: 0 })
  })

  it('keeps the VM and its disk across a restart of the stack (an upgrade), then deletes it', async () => {
    expect(vmId).not.toBe('')
    const t = Date.now()
    // down stops the VM cleanly first: a container stop alone would cut its power.
    const said = spawnSync(NODE, [path.join(REPO, 'deploy/podman-stack.ts'), 'down', '--project', PROJECT], { env, encoding: 'utf8' })
    expect(said.status, said.stderr).toBe(0)
    expect(said.stderr).toContain('stopped 1 of 1 running VMs')
    expect(lines('pgrep', ['-f', `rds:${CONTAINER_INSTANCE}:${vmId}`])).toEqual([])
    stack('up')
    await untilAnswering()
    console.log(`deploy: stack restarted in ${((Date.now() - t) / 1000).toFixed(1)} s`)
    const after = await request('GET', `/v1/vms/${vmId}`)
    expect(after.status).toBe(200)
    expect(after.body.state).toBe('STOPPED')
    expect((await request('POST', `/v1/vms/${vmId}/start`)).status).toBe(204)
    const read = await request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'cat /workspace/upgrade.txt' })
    expect(read.body).toMatchObject({ exitCode: 0, stdout: 'kept\n' })
    const deleted = await request('DELETE', `/v1/vms/${vmId}`)
    expect(deleted.status).toBe(204)
    expect((await request('GET', `/v1/vms/${vmId}`)).status).toBe(404)
  })

  it('goes down leaving nothing on the host', async () => {
    const t = Date.now()
    stack('down', '--volumes')
    stackUp = false
    console.log(`deploy: stack down in ${((Date.now() - t) / 1000).toFixed(1)} s`)
    // Let the kernel finish tearing down what the containers had (namespaces, TAPs) before comparing.
    let left: string[] = []
    for (let i = 0; i < 10; i++) {
      left = [...hostState()].filter((x) => !before.has(x) && couldBeOurs(x))
      if (left.length === 0) break
      await sleep(500)
    }
    expect(left).toEqual([])
    expect(fs.existsSync(path.join('/sys/fs/cgroup/memory', PROJECT))).toBe(false)
    expect(lines('podman', ['ps', '-a', '--filter', `label=io.podman.compose.project=${PROJECT}`, '--format', '{{.Names}}'])).toEqual([])
  })
})

/**
 * Other checkouts run VM tests on this host at the same time: their managers' namespaces, links,
 * tables, RAM directories and QEMUs come and go. What this stack could leave is told apart: it
 * names our project or the container manager's instance, or it is a Podman object or helper
 * process (containers, volumes, networks, conmon, slirp4netns: no other test uses Podman) or what Podman's own networking makes on a host
 * (veth and bridge links, netavark's nft tables), which this stack must never need.
 */
function couldBeOurs(x: string): boolean {
  if (x.includes(PROJECT) || x.includes(CONTAINER_INSTANCE)) return true
  return /^(container|volume|network|proc) /.test(x) || /^link (veth|podman|cni)/.test(x) || /^nft table .*(netavark|nat|filter)/.test(x)
}
