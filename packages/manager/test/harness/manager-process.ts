// Starts the real manager (packages/manager/src/main.ts) as a child process on a free port
// with its own temporary STORAGE_ROOT, exactly as `npm start` would run it, and gives tests
// a small client. kill() can be graceful or -9 so restarts are tested for real.
import { spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { netnsOf } from '../../src/runtime/network/host-network.ts'
import { instanceOf } from '../../src/runtime/reclaim/instance-mark.ts'
import { reclaimInstance } from '../../src/runtime/reclaim/stale-instances.ts'
import { detectCgroupLayout, VmmCgroups } from '../../src/runtime/vmm/confinement/cgroups.ts'
import { enforce, OpenApiResponses } from './openapi-responses.ts'

const MAIN = path.resolve(import.meta.dirname, '../../src/main.ts')
export const CACHE_DIR = process.env.RDS_CACHE_DIR || '/var/cache/run-dat-sheesh'

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

let networkCounter = 0

/**
 * A VM network of its own for each test manager, so a manager left behind by a failed test
 * cannot block the next one with an overlapping route.
 */
function testNetwork(): Record<string, string> {
  const n = (process.pid + networkCounter++) % 250
  return { VM_NETWORK_CIDR: `10.202.${n}.0/24`, VM_LINK_CIDR: `169.254.202.${n % 63 * 4}/30` }
}

/** Instances of the managers this test process made: the leak check holds it to their resources. */
export const ownInstances = new Set<string>()

export interface ApiResponse<T = any> {
  status: number
  body: T
  headers: Headers
}

/**
 * Talks to a running manager, the way a program would: requests with its API key, and every /v1
 * answer checked against the manager's own /openapi.json (loadOpenApi).
 */
export class ManagerClient {
  readonly storageRoot: string
  readonly apiKey: string
  port: number
  /** This manager's own /openapi.json: every /v1 response is checked against it once loaded. */
  protected responses: OpenApiResponses | undefined
  protected log = ''

  constructor(o: { storageRoot: string; apiKey: string; port?: number }) {
    this.storageRoot = o.storageRoot
    this.apiKey = o.apiKey
    this.port = o.port ?? 0
  }

  /** The manager's log (stdout and stderr) so far. */
  get output(): string {
    return this.log
  }

  /** The manager's network namespace (named from STORAGE_ROOT, as the manager does). */
  get netns(): string {
    return netnsOf(instanceOf(this.storageRoot))
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Reads the manager's OpenAPI document; answers are checked against it from now on. Resolves false while it is not listening. */
  async loadOpenApi(): Promise<boolean> {
    const r = await fetch(`${this.baseUrl}/openapi.json`).catch(() => undefined)
    if (!r?.ok) return false
    this.responses = new OpenApiResponses(await r.json())
    return true
  }

  async request<T = any>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const isRaw = body instanceof Uint8Array
    const r = await fetch(`${this.baseUrl}${url}`, {
      method,
      headers: { 'x-api-key': this.apiKey, ...(body !== undefined && !isRaw ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : isRaw ? (body as unknown as BodyInit) : JSON.stringify(body),
    })
    const text = isJson(r.headers.get('content-type')) ? await r.text() : undefined
    this.checkResponse(method, url, r, text)
    const data = text !== undefined ? (text ? JSON.parse(text) : undefined) : new Uint8Array(await r.arrayBuffer())
    return { status: r.status, body: data as T, headers: r.headers }
  }

  /** A request as given (no API key added), for streamed bodies and missing keys; the answer is checked like request()'s. */
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const r = await fetch(`${this.baseUrl}${url}`, init)
    if (!isJson(r.headers.get('content-type'))) {
      this.checkResponse(init.method ?? 'GET', url, r, undefined)
      return r
    }
    const text = await r.text()
    this.checkResponse(init.method ?? 'GET', url, r, text)
    return new Response(text, { status: r.status, statusText: r.statusText, headers: r.headers })
  }

  /** The API is /v1; the documentation routes describe themselves. */
  private checkResponse(method: string, url: string, r: Response, text: string | undefined): void {
    if (!this.responses || !url.startsWith('/v1/')) return
    enforce(this.responses.check(method, url, r.status, r.headers.get('content-type') ?? undefined, text), r.status, text)
  }

  /** A shell command in a VM as uid 1000; anything but 200 throws with the API's answer. */
  async exec(vmId: string, cmd: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await this.request('POST', `/v1/vms/${vmId}/exec`, { cmd })
    if (r.status !== 200) throw new Error(`exec failed: ${JSON.stringify(r.body)}`)
    return r.body
  }

  /** Writes a file in a VM as uid 1000 (any bytes: they travel base64-encoded). */
  writeFile(vmId: string, file: string, content: string) {
    return this.exec(vmId, `mkdir -p "$(dirname ${file})" && printf '%s' '${Buffer.from(content).toString('base64')}' | base64 -d > ${file}`)
  }

  /** Polls until `check` returns a value; the bound only keeps a broken manager from hanging the suite. */
  async waitFor<T>(what: string, check: () => Promise<T | undefined>, boundMs = 300_000): Promise<T> {
    const deadline = Date.now() + boundMs
    while (Date.now() < deadline) {
      const v = await check()
      if (v !== undefined) return v
      await sleep(250)
    }
    throw new Error(`gave up waiting for ${what}\n${this.output.slice(-3000)}`)
  }

  /** GET /v1/images' default image. */
  async defaultImage(): Promise<any> {
    return (await this.request('GET', '/v1/images')).body.find((i: { isDefault: boolean }) => i.isDefault)
  }
}

/** A JSON document (application/json, …+json), not a stream of them (application/x-ndjson). */
const isJson = (contentType: string | null): boolean => /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(contentType ?? '')

/** A manager started by the test as a child process (`npm start`'s code), with its own STORAGE_ROOT. */
export class ManagerProcess extends ManagerClient {
  private child: ChildProcess | undefined
  /** The manager's stdout alone: its JSON log lines. */
  stdout = ''
  stderr = ''
  private readonly env: Record<string, string>

  /** Its output is also appended here, for readers in other processes (the shared manager's). */
  private readonly logFile: string | undefined

  /** `storageRoot`: another manager's, for tests of two managers on one STORAGE_ROOT. */
  constructor(env: Record<string, string> = {}, o: { storageRoot?: string; logFile?: string } = {}) {
    // API_KEY must be 16 characters or more.
    super({ storageRoot: o.storageRoot ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rds-test-')), apiKey: `test-${crypto.randomBytes(12).toString('hex')}` })
    ownInstances.add(instanceOf(this.storageRoot))
    this.logFile = o.logFile
    // Image seeds cost a boot per manager start, a warm pool a VM: only the tests about them turn them on.
    this.env = { ...testNetwork(), ENABLE_IMAGE_SEED: 'false', ENABLE_WARM_POOL: 'false', ...env }
  }

  /** Environment for the next start (a restart with other settings keeps the storage root). */
  setEnv(extra: Record<string, string>): void {
    Object.assign(this.env, extra)
  }

  /** The manager's process id while it runs (memory figures of the security suite). */
  get pid(): number | undefined {
    return this.child?.pid
  }

  async start(): Promise<void> {
    if (!this.port) this.port = await freePort()
    const child = spawn(process.execPath, [MAIN], {
      env: { ...process.env, PORT: String(this.port), API_KEY: this.apiKey, STORAGE_ROOT: this.storageRoot, RDS_CACHE_DIR: CACHE_DIR, LOG_LEVEL: 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child = child
    const logged = (d: Buffer) => {
      this.log += d
      if (this.logFile) fs.appendFileSync(this.logFile, d)
    }
    child.stdout!.on('data', (d: Buffer) => {
      logged(d)
      this.stdout += d
    })
    child.stderr!.on('data', (d: Buffer) => {
      logged(d)
      this.stderr += d
    })
    const deadline = Date.now() + 300_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`manager exited (${child.exitCode}):\n${this.output}`)
      if (await this.loadOpenApi()) return
      await sleep(100)
    }
    throw new Error(`manager did not start:\n${this.output}`)
  }

  /** For a manager expected to refuse to start: its exit code, once all of its output is in. */
  async exitCode(): Promise<number | null> {
    const c = this.child
    if (!c) throw new Error('not started')
    if (c.stdout!.readableEnded && c.stderr!.readableEnded && c.exitCode !== null) return c.exitCode
    return new Promise((resolve) => c.once('close', (code) => resolve(code)))
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child
    if (!c || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise((r) => c.once('exit', r))
    c.kill(signal)
    await exited
  }

  /** Stops the manager and leaves nothing of it on the host (the leak check after each file holds tests to it). */
  async cleanup(): Promise<void> {
    await this.stop()
    // Its QEMUs, and a VMM's launch chain the manager left mid-start (a warm-pool refill when it
    // stopped): that has joined its cgroup but not exec'd QEMU yet, so only the cgroup shows it.
    // Until all are gone the instance is alive, and reclamation leaves it alone.
    const cgroups = detectCgroupLayout()
    const vmmTasks = () => [...qemuProcessesOf(this.storageRoot), ...(cgroups ? new VmmCgroups(cgroups, instanceOf(this.storageRoot)).tasks() : [])]
    const deadline = Date.now() + 20_000
    for (let left = vmmTasks(); left.length && Date.now() < deadline; left = vmmTasks()) {
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
      await sleep(100)
    }
    // A manager stopped with VMs (or killed) leaves its namespace, host table and RAM directory
    // by design: removed as a later manager's start would remove them.
    await reclaimInstance(instanceOf(this.storageRoot))
    fs.rmSync(this.storageRoot, { recursive: true, force: true })
  }
}

/** QEMU processes started by any manager whose STORAGE_ROOT is `storageRoot` (their -name marker). */
export function qemuProcessesOf(storageRoot: string): number[] {
  // By the -name marker: a confined QEMU's command line names only paths inside its own root.
  const marker = `rds:${instanceOf(storageRoot)}:`
  const pids: number[] = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
      if (args[0]?.includes('qemu-system') && args[args.indexOf('-name') + 1]?.startsWith(marker)) pids.push(Number(d))
    } catch {
      // raced with exit
    }
  }
  return pids
}
