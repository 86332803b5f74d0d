// A sandbox is one VM. `Sandbox.create()` makes one, `Sandbox.connect(id)` takes one that exists;
// `await using sb = await Sandbox.create()` deletes it when the block ends.
import { Http, q, type ClientOptions, type RequestOptions } from './http.ts'
import type { CreateOptions, ExecOptions, ExecResult, NetworkInfo, NetworkPolicy, PeerLink, RunOptions, RunResult, SnapshotInfo, VmInfo } from './types.ts'

const envList = (env: Record<string, string> | undefined) => (env ? Object.entries(env).map(([k, v]) => `${k}=${v}`) : undefined)
/** Beyond a run's own timeout, how long to wait for the manager's answer. */
const ANSWER_GRACE_MS = 30_000

export class Sandbox {
  readonly id: string
  /** The VM as it was last read (create, connect, refresh). */
  info: VmInfo
  private readonly http: Http
  readonly files: SandboxFiles
  readonly network: SandboxNetwork
  readonly peers: SandboxPeers

  private constructor(http: Http, info: VmInfo) {
    this.http = http
    this.id = info.id
    this.info = info
    this.files = new SandboxFiles(http, info.id)
    this.network = new SandboxNetwork(http, info.id)
    this.peers = new SandboxPeers(http, info.id)
  }

  /** Creates a VM (1 vCPU, 256 MiB, no network by default) and resolves once it runs. */
  static async create(o: CreateOptions & ClientOptions & RequestOptions = {}): Promise<Sandbox> {
    const http = new Http(o)
    const body = {
      cpu: o.cpu ?? 1,
      memMb: o.memMb ?? 256,
      allowIps: o.allowIps ?? [],
      ...(o.allowDomains ? { allowDomains: o.allowDomains } : {}),
      ...(o.outboundInternet !== undefined ? { outboundInternet: o.outboundInternet } : {}),
      ...(o.imageId ? { imageId: o.imageId } : {}),
      ...(o.snapshotId ? { snapshotId: o.snapshotId } : {}),
      ...(o.acceptSnapshotSecrets ? { acceptSnapshotSecrets: true } : {}),
      ...(o.secretEnv ? { secretEnv: envList(o.secretEnv) } : {}),
      ...(o.peerLinks ? { peerLinks: o.peerLinks } : {}),
    }
    return new Sandbox(http, await http.json<VmInfo>('POST', '/v1/vms', body, o))
  }

  /** A VM that exists (RdsApiError `vm_not_found` otherwise). */
  static async connect(id: string, o: ClientOptions & RequestOptions = {}): Promise<Sandbox> {
    const http = new Http(o)
    return new Sandbox(http, await http.json<VmInfo>('GET', `/v1/vms/${encodeURIComponent(id)}`, undefined, o))
  }

  static async list(o: ClientOptions & RequestOptions = {}): Promise<VmInfo[]> {
    return new Http(o).json<VmInfo[]>('GET', '/v1/vms', undefined, o)
  }

  private path(rest = ''): string {
    return `/v1/vms/${encodeURIComponent(this.id)}${rest}`
  }

  /** Reads the VM again (state, address, last error). */
  async refresh(o: RequestOptions = {}): Promise<VmInfo> {
    this.info = await this.http.json<VmInfo>('GET', this.path(), undefined, o)
    return this.info
  }

  /** A shell command as uid 1000 in /workspace (or `cwd`); resolves with its exit code and output. */
  exec(cmd: string, o: ExecOptions = {}): Promise<ExecResult> {
    const body = { cmd, ...(o.cwd ? { cwd: o.cwd } : {}), ...(o.env ? { env: o.env } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) }
    return this.http.json<ExecResult>('POST', this.path('/exec'), body, { signal: o.signal, timeoutMs: (o.timeoutMs ?? 30_000) + ANSWER_GRACE_MS })
  }

  /** TypeScript with Deno: inline code, or `{ path }` of a module under /workspace. */
  runTs(code: string | { path: string }, o: RunOptions = {}): Promise<RunResult> {
    return this.run('run-ts', 'denoFlags', code, o)
  }

  /** JavaScript with Node: inline code, or `{ path }` of a module under /workspace. */
  runJs(code: string | { path: string }, o: RunOptions = {}): Promise<RunResult> {
    return this.run('run-js', 'nodeFlags', code, o)
  }

  private run(route: string, flagsField: string, code: string | { path: string }, o: RunOptions): Promise<RunResult> {
    const body = {
      ...(typeof code === 'string' ? { code } : { path: code.path }),
      ...(o.args ? { args: o.args } : {}),
      ...(o.env ? { env: envList(o.env) } : {}),
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.flags ? { [flagsField]: o.flags } : {}),
    }
    return this.http.json<RunResult>('POST', this.path(`/${route}`), body, { signal: o.signal, timeoutMs: (o.timeoutMs ?? 30_000) + ANSWER_GRACE_MS })
  }

  /** Memory, device state and disk; `Sandbox.create({ snapshotId })` resumes from it. */
  snapshot(o: RequestOptions = {}): Promise<SnapshotInfo> {
    return this.http.json<SnapshotInfo>('POST', this.path('/snapshots'), undefined, o)
  }

  async pause(o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.path('/pause'), undefined, o)
  }
  async resume(o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.path('/resume'), undefined, o)
  }
  async stop(o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.path('/stop'), undefined, o)
  }
  async start(o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.path('/start'), undefined, o)
  }

  /** Deletes the VM and everything it has on the host. */
  async delete(o: RequestOptions = {}): Promise<void> {
    await this.http.json('DELETE', this.path(), undefined, o)
  }

  /** The console (`console.log`) or VMM log, last `tail` lines. */
  async logs(o: { type?: 'console.log' | 'vmm.log'; tail?: number } & RequestOptions = {}): Promise<string[]> {
    return (await this.http.json<{ lines: string[] }>('GET', this.path(`/logs${q({ type: o.type, tail: o.tail })}`), undefined, o)).lines
  }

  /** `await using sb = await Sandbox.create()`: the VM is deleted when the block ends (a VM already gone is fine). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.delete().catch((err: { code?: string }) => {
      if (err?.code !== 'vm_not_found') throw err
    })
  }
}

/** A part of one sandbox's API (its files, network, peers): the client and the VM's path. */
abstract class SandboxPart {
  protected readonly http: Http
  protected readonly id: string
  constructor(http: Http, id: string) {
    this.http = http
    this.id = id
  }
}

/** Files in the VM: tar.gz archives in and out (paths under /workspace). */
export class SandboxFiles extends SandboxPart {

  /** Unpacks a tar.gz into `dest` (a directory under /workspace, made if missing). */
  async upload(archive: Uint8Array | Blob | ReadableStream<Uint8Array>, dest = '/workspace', o: RequestOptions = {}): Promise<void> {
    const res = await this.http.send('POST', `/v1/vms/${encodeURIComponent(this.id)}/files/upload${q({ dest })}`, { body: archive as BodyInit, type: 'application/gzip' }, o)
    await res.body?.cancel()
  }

  /** `path` (a file or a directory) as a tar.gz, as a stream. */
  async download(path: string, o: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.http.send('GET', `/v1/vms/${encodeURIComponent(this.id)}/files/download${q({ path })}`, undefined, o)
    return res.body!
  }

  /** `path` as a tar.gz, whole. */
  async downloadBytes(path: string, o: RequestOptions = {}): Promise<Uint8Array> {
    const res = await this.http.send('GET', `/v1/vms/${encodeURIComponent(this.id)}/files/download${q({ path })}`, undefined, o)
    return new Uint8Array(await res.arrayBuffer())
  }
}

/** The VM's egress policy, enforced on the host. */
export class SandboxNetwork extends SandboxPart {
  get(o: RequestOptions = {}): Promise<NetworkInfo> {
    return this.http.json<NetworkInfo>('GET', `/v1/vms/${encodeURIComponent(this.id)}/network`, undefined, o)
  }
  /** Applies at once, also to open connections; fields not given stay as they are. */
  update(policy: NetworkPolicy, o: RequestOptions = {}): Promise<NetworkInfo> {
    return this.http.json<NetworkInfo>('PATCH', `/v1/vms/${encodeURIComponent(this.id)}/network`, policy, o)
  }
}

/** Provider VMs this VM may call through the manager's bridge. */
export class SandboxPeers extends SandboxPart {
  /** Re-reads every provider and rewrites /workspace/peers. */
  async sync(o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', `/v1/vms/${encodeURIComponent(this.id)}/peers/sync`, undefined, o)
  }
  async setSourceMode(alias: string, sourceMode: 'hidden' | 'mounted', o: RequestOptions = {}): Promise<void> {
    await this.http.json('PATCH', `/v1/vms/${encodeURIComponent(this.id)}/peers/${encodeURIComponent(alias)}`, { sourceMode }, o)
  }
  list(): Promise<PeerLink[]> {
    return this.http.json<VmInfo>('GET', `/v1/vms/${encodeURIComponent(this.id)}`).then((v) => v.peerLinks)
  }
}
