// A manager in this process on the fake VMM (fake-vmm.ts): the real services over a temporary
// STORAGE_ROOT (SQLite, disks, RAM files), the real network service (its own namespace, TAPs
// and rules), the real supervisor and agent client, and the HTTP API through app.inject. No
// QEMU and no guest: a create takes milliseconds. It starts and stops as main.ts does, so
// restart() is a manager restart with the fake VMs still running. Needs root (the namespace).
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { composeServices, type Services } from '../../src/compose.ts'
import { loadConfig } from '../../src/config.ts'
import type { ReconcileSummary } from '../../src/services/startup-reconcile.ts'
import { FakeVmm } from './fake-vmm.ts'

const MiB = 1024 * 1024

export interface FakeManagerOptions {
  /** Manager environment on top of the harness's (see FakeManager.env). */
  env?: Record<string, string>
  /** Agent health check period; the supervisor's default (5 s) otherwise. */
  healthIntervalMs?: number
  /** The manager's logger (services and requests); silent otherwise. */
  log?: pino.Logger
  /** What the fake VMM says each VMM takes beside its guest (FakeVmm.overheadMb); 0 otherwise. */
  vmmOverheadMb?: number
}

export interface ApiReply<T> {
  status: number
  body: T
}

/**
 * A VM network no other manager on this host uses: 10.204.<n>.0/24 with 169.254.204.<4n>/30.
 * Each vitest worker (VITEST_POOL_ID) has its own four values of n, so files running at the
 * same time never share one, and each checkout of the repository its own sixteen (from the
 * hash of its path), so two checkouts testing at once rarely meet; a value whose network is
 * routed already (a leftover, another run) is skipped.
 */
function freeTestNetwork(): Record<string, string> {
  const routes = execFileSync('ip', ['-4', '-o', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })
  const worker = Number(process.env.VITEST_POOL_ID ?? 1) - 1
  const checkout = crypto.createHash('sha256').update(path.resolve(import.meta.dirname, '../../../..')).digest()[0]! % 4
  for (let k = 0; k < 4; k++) {
    const n = (checkout * 16 + worker * 4 + k) % 64
    if (!routes.includes(`10.204.${n}.`)) return { VM_NETWORK_CIDR: `10.204.${n}.0/24`, VM_LINK_CIDR: `169.254.204.${n * 4}/30` }
  }
  throw new Error(`no free test VM network for vitest worker ${worker + 1}: 10.204.${checkout * 16 + worker * 4}-${checkout * 16 + worker * 4 + 3}.0/24 are all routed`)
}

/** Image files no VMM reads: only their presence and identity (imageStamp) matter. The initrd spares the kernel's driver check. */
async function registerFakeImage(s: Services, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true })
  const file = (name: string) => {
    fs.writeFileSync(path.join(dir, name), `fake ${name}\n`)
    return path.join(dir, name)
  }
  const img = await s.images.importFiles({ kernel: file('vmlinux'), initrd: file('initrd'), rootfs: file('rootfs.ext4') }, { manifest: { fake: true }, name: 'fake', description: 'files for the fake VMM' })
  await s.images.setDefault(img.id)
  return img.id
}

export class FakeManager {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-fake-'))
  /** Survives restart(): its VMs are the "VMM processes" a restarted manager finds. */
  readonly vmm = new FakeVmm()
  readonly apiKey = `fake-${crypto.randomBytes(12).toString('hex')}`
  readonly env: Record<string, string>
  s!: Services
  app!: FastifyInstance
  imageId!: string
  /** What the startup reconciliation of the last start did. */
  startup!: ReconcileSummary
  private readonly healthIntervalMs: number | undefined
  private readonly log: pino.Logger | undefined
  /** Seeds, then the warm pool, filling in the background as in main.ts. */
  private background: Promise<void> = Promise.resolve()

  private constructor(o: FakeManagerOptions) {
    this.healthIntervalMs = o.healthIntervalMs
    this.log = o.log
    this.vmm.overheadMb = o.vmmOverheadMb ?? 0
    this.env = {
      STORAGE_ROOT: this.root,
      VM_RAM_DIR: path.join(this.root, 'ram'),
      ...freeTestNetwork(),
      ENABLE_IMAGE_SEED: 'false',
      ENABLE_WARM_POOL: 'false',
      // The fake agent answers in milliseconds; only a muted one runs into this.
      BOOT_TIMEOUT_MS: '1000',
      OVERLAY_SIZE_BYTES: String(64 * MiB),
      ...o.env,
    }
  }

  static async start(o: FakeManagerOptions = {}): Promise<FakeManager> {
    const m = new FakeManager(o)
    try {
      await m.up()
    } catch (err) {
      await m.close().catch(() => {})
      throw err
    }
    return m
  }

  /** The manager's network namespace (named from STORAGE_ROOT, as compose.ts does). */
  get netns(): string {
    return `rds-${crypto.createHash('sha256').update(this.root).digest('hex').slice(0, 10)}`
  }

  async api<T = any>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown): Promise<ApiReply<T>> {
    const r = await this.app.inject({ method, url, headers: { 'x-api-key': this.apiKey }, ...(body === undefined ? {} : { payload: body as object }) })
    return { status: r.statusCode, body: (r.body ? r.json() : undefined) as T }
  }

  /**
   * A manager stop and start on the same STORAGE_ROOT; the fake VMs keep running meanwhile.
   * `whileStopped` runs in between (a VMM that dies while no manager watches).
   */
  async restart(whileStopped?: () => Promise<void>): Promise<ReconcileSummary> {
    await this.down({ keepNetwork: true })
    await whileStopped?.()
    await this.up()
    return this.startup
  }

  /** Everything of this manager goes: VMs, namespace, host rules, files. */
  async close(): Promise<void> {
    try {
      if (this.s) await this.down({ keepNetwork: false })
      else await this.vmm.close()
    } finally {
      fs.rmSync(this.root, { recursive: true, force: true })
    }
  }

  /** TAP devices in the manager's namespace, as `ip` lists them. */
  taps(): string[] {
    if (!fs.existsSync(`/run/netns/${this.netns}`)) return []
    const out = execFileSync('ip', ['-n', this.netns, '-o', 'link'], { encoding: 'utf8' })
    return out.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter((name) => /^vm[0-9a-f]{12}$/.test(name))
  }

  vmDirs(): string[] {
    return fs.readdirSync(path.join(this.root, 'vms'))
  }

  ramFiles(): string[] {
    return fs.existsSync(this.env.VM_RAM_DIR) ? fs.readdirSync(this.env.VM_RAM_DIR) : []
  }

  /**
   * Polls until `check` returns a value (not undefined/false), or fails after `timeoutMs`: a bound
   * against hangs, generous because a loaded host (parallel files, VM builds) is slow.
   */
  async waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = await check()
      if (v !== undefined && v !== false) return v
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(20)
    }
  }

  /** Waits until the VM is in `state`; returns it. */
  async waitForState(id: string, state: string, timeoutMs?: number): Promise<any> {
    return this.waitFor(`VM ${id} to be ${state}`, async () => {
      const r = await this.api('GET', `/v1/vms/${id}`)
      return r.body?.state === state && r.body
    }, timeoutMs)
  }

  /** As main.ts starts. */
  private async up(): Promise<void> {
    this.s = await composeServices(loadConfig(this.env), this.log ?? pino({ level: 'silent' }), { value: 'tcg' }, { driver: this.vmm, healthIntervalMs: this.healthIntervalMs })
    this.imageId = (await this.s.images.getDefault())?.id ?? (await registerFakeImage(this.s, path.join(this.root, 'fake-image')))
    this.startup = await this.s.reconcile()
    await this.s.snapshots.reconcile()
    await this.s.templates.start()
    this.background = this.s.seeds.start().then(() => this.s.pool.start())
    this.s.activity.start()
    this.s.deliveries.start()
    void this.s.expiry.start()
    this.app = await buildApp(this.s, { apiKey: this.apiKey, ...(this.log ? { loggerInstance: this.log } : {}) })
  }

  /** As main.ts shuts down: VMs keep running (unless the network goes too, then they are ended first). */
  private async down(o: { keepNetwork: boolean }): Promise<void> {
    await this.app?.close()
    this.s.templates.close()
    await this.s.expiry.close()
    await Promise.all([this.s.pool.close(), this.s.seeds.close()])
    this.s.activity.close()
    await this.s.deliveries.close()
    await this.background.catch(() => {})
    this.s.supervisor.detachAll()
    this.s.peerCalls.closeAll()
    if (!o.keepNetwork) await this.vmm.close()
    await this.s.network.close(o.keepNetwork ? await this.s.vms.countAll() : 0)
    await this.s.db.destroy()
  }
}
