// A sandbox is one VM. `Sandbox.create()` makes one, `Sandbox.connect(id)` takes one that exists;
// `await using sb = await Sandbox.create()` deletes it when the block ends.
import { ProcessConnection, type AttachOptions } from './attach.ts'
import { RdsApiError } from './errors.ts'
import { packDir, unpackTo } from './local-dirs.ts'
import { Http, q, type ClientOptions, type RequestOptions } from './http.ts'
import { readEvents } from './ndjson.ts'
import type { CreateOptions, ExecOptions, ExecResult, FileEntry, FileEvent, NetworkInfo, NetworkPolicy, OutputEvent, PeerLink, PortPublicState, PreviewUrl, ProcessInfo, ProcessSignal, ProcessStartOptions, PtyOptions, RunOptions, RunResult, SnapshotInfo, VmInfo } from './types.ts'

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
  readonly processes: SandboxProcesses
  readonly pty: SandboxPty
  readonly ports: SandboxPorts

  private constructor(http: Http, info: VmInfo) {
    this.http = http
    this.id = info.id
    this.info = info
    this.files = new SandboxFiles(http, info.id)
    this.network = new SandboxNetwork(http, info.id)
    this.peers = new SandboxPeers(http, info.id)
    this.processes = new SandboxProcesses(http, info.id)
    this.pty = new SandboxPty(http, info.id)
    this.ports = new SandboxPorts(http, info.id)
  }

  /**
   * The preview host of a port (`<port>-<vmId>.<PREVIEW_DOMAIN>[:port]`, no scheme), as E2B's
   * `getHost` gives it. Opening it needs the token of `ports.url()`, an API key, or a public port.
   */
  async getHost(port: number, o: RequestOptions = {}): Promise<string> {
    return new URL((await this.ports.url(port, o)).url).host
  }

  /**
   * Creates a VM (1 vCPU, 256 MiB, no network by default) and resolves once it runs. With
   * `template`, the VM is spawned from that template's build (its shape and image; the network
   * policy, secrets, peer links, TTL and labels given here).
   */
  static async create(o: CreateOptions & { template?: string } & ClientOptions & RequestOptions = {}): Promise<Sandbox> {
    const http = new Http(o)
    if (o.template !== undefined) {
      const spawn = {
        ...(o.allowIps ? { allowIps: o.allowIps } : {}),
        ...(o.allowDomains ? { allowDomains: o.allowDomains } : {}),
        ...(o.outboundInternet !== undefined ? { outboundInternet: o.outboundInternet } : {}),
        ...(o.secretEnv ? { secretEnv: envList(o.secretEnv) } : {}),
        ...(o.peerLinks ? { peerLinks: o.peerLinks } : {}),
        ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}),
        ...(o.onExpire ? { onExpire: o.onExpire } : {}),
        ...(o.labels ? { labels: o.labels } : {}),
      }
      return new Sandbox(http, await http.json<VmInfo>('POST', `/v1/templates/${encodeURIComponent(o.template)}/vms`, spawn, o))
    }
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
      ...(o.ttlSeconds !== undefined ? { ttlSeconds: o.ttlSeconds } : {}),
      ...(o.onExpire ? { onExpire: o.onExpire } : {}),
      ...(o.labels ? { labels: o.labels } : {}),
    }
    return new Sandbox(http, await http.json<VmInfo>('POST', '/v1/vms', body, o))
  }

  /** A VM that exists (RdsApiError `vm_not_found` otherwise). */
  static async connect(id: string, o: ClientOptions & RequestOptions = {}): Promise<Sandbox> {
    const http = new Http(o)
    return new Sandbox(http, await http.json<VmInfo>('GET', `/v1/vms/${encodeURIComponent(id)}`, undefined, o))
  }

  /** The VMs; with `labels`, only those carrying all of them (a null value: the key with any value). */
  static async list(o: { labels?: Record<string, string | null> } & ClientOptions & RequestOptions = {}): Promise<VmInfo[]> {
    const query = Object.entries(o.labels ?? {}).map(([k, v]) => `label=${encodeURIComponent(v === null ? k : `${k}=${v}`)}`)
    return new Http(o).json<VmInfo[]>('GET', `/v1/vms${query.length ? `?${query.join('&')}` : ''}`, undefined, o)
  }

  private path(rest = ''): string {
    return `/v1/vms/${encodeURIComponent(this.id)}${rest}`
  }

  /** Reads the VM again (state, address, last error). */
  async refresh(o: RequestOptions = {}): Promise<VmInfo> {
    this.info = await this.http.json<VmInfo>('GET', this.path(), undefined, o)
    return this.info
  }

  /**
   * A shell command as uid 1000 in /workspace (or `cwd`); resolves with its exit code and output.
   * With `onStdout` / `onStderr` the output also arrives as it happens, and aborting the call
   * (`signal`) kills the command.
   */
  async exec(cmd: string, o: ExecOptions = {}): Promise<ExecResult> {
    const body = { cmd, ...(o.cwd ? { cwd: o.cwd } : {}), ...(o.env ? { env: o.env } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) }
    const timing = { signal: o.signal, timeoutMs: (o.timeoutMs ?? 30_000) + ANSWER_GRACE_MS }
    if (!o.onStdout && !o.onStderr) return this.http.json<ExecResult>('POST', this.path('/exec'), body, timing)
    const res = await this.http.send('POST', this.path('/exec'), { body: JSON.stringify({ ...body, stream: true }), type: 'application/json' }, timing)
    const out: string[] = []
    const err: string[] = []
    for await (const e of readEvents(res.body!)) {
      if (e.type === 'stdout' || e.type === 'stderr') {
        const text = e.data ?? new TextDecoder().decode(Uint8Array.from(atob(e.dataBase64 ?? ''), (c) => c.charCodeAt(0)))
        ;(e.type === 'stdout' ? out : err).push(text)
        ;(e.type === 'stdout' ? o.onStdout : o.onStderr)?.(text)
      } else if (e.type === 'exit') {
        return { exitCode: e.exitCode, stdout: out.join(''), stderr: err.join(''), timedOut: e.timedOut, stdoutTruncated: e.stdoutTruncated ?? false, stderrTruncated: e.stderrTruncated ?? false, durationMs: e.durationMs }
      } else if (e.type === 'error') throw new RdsApiError(502, e.code, e.message)
    }
    throw new RdsApiError(502, 'agent_unavailable', 'the stream ended without an exit event')
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
      ...(o.warm === false ? { warm: false } : {}),
    }
    return this.http.json<RunResult>('POST', this.path(`/${route}`), body, { signal: o.signal, timeoutMs: (o.timeoutMs ?? 30_000) + ANSWER_GRACE_MS })
  }

  /** Memory, device state and disk; `Sandbox.create({ snapshotId })` resumes from it. */
  snapshot(o: RequestOptions = {}): Promise<SnapshotInfo> {
    return this.http.json<SnapshotInfo>('POST', this.path('/snapshots'), undefined, o)
  }

  /** The VM now expires `ttlSeconds` from now (and that is its TTL from then on); answers the VM. */
  async extend(ttlSeconds: number, o: RequestOptions = {}): Promise<VmInfo> {
    this.info = await this.http.json<VmInfo>('POST', this.path('/extend'), { ttlSeconds }, o)
    return this.info
  }

  /** E2B's name for extend: the sandbox ends `timeoutMs` from now (rounded up to whole seconds). */
  async setTimeout(timeoutMs: number, o: RequestOptions = {}): Promise<VmInfo> {
    return this.extend(Math.max(1, Math.ceil(timeoutMs / 1000)), o)
  }

  /** Sets labels ({key: value}) and removes others ({key: null}); `replace` sets exactly these. */
  async setLabels(labels: Record<string, string | null>, o: { replace?: boolean } & RequestOptions = {}): Promise<VmInfo> {
    this.info = await this.http.json<VmInfo>(o.replace ? 'PUT' : 'PATCH', this.path('/labels'), labels, o)
    return this.info
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

/** Files in the VM, one at a time or as tar.gz archives (paths under /workspace, as uid 1000 may use them). */
export class SandboxFiles extends SandboxPart {
  private file(rest: string, params: Record<string, string | number | boolean | undefined>): string {
    return `/v1/vms/${encodeURIComponent(this.id)}/files${rest}${q(params)}`
  }

  /** A file's content: text (UTF-8) by default, bytes with `{ format: 'bytes' }`. */
  read(path: string, o?: RequestOptions & { format?: 'text' }): Promise<string>
  read(path: string, o: RequestOptions & { format: 'bytes' }): Promise<Uint8Array>
  async read(path: string, o: RequestOptions & { format?: 'text' | 'bytes' } = {}): Promise<string | Uint8Array> {
    const res = await this.http.send('GET', this.file('', { path }), undefined, o)
    return o.format === 'bytes' ? new Uint8Array(await res.arrayBuffer()) : res.text()
  }

  /** A file's content as a stream (any size; nothing held whole). */
  async readStream(path: string, o: RequestOptions = {}): Promise<ReadableStream<Uint8Array>> {
    return (await this.http.send('GET', this.file('', { path }), undefined, o)).body!
  }

  /** Writes a file (parents made, replaced whole once all bytes arrived); `mode` as octal text, e.g. "755". */
  async write(path: string, data: string | Uint8Array | Blob | ReadableStream<Uint8Array>, o: RequestOptions & { mode?: string } = {}): Promise<void> {
    const res = await this.http.send('PUT', this.file('', { path, mode: o.mode }), { body: data as BodyInit, type: 'application/octet-stream' }, o)
    await res.body?.cancel()
  }

  /** A directory's entries (`depth` levels down, default 1). */
  list(path = '/workspace', o: RequestOptions & { depth?: number } = {}): Promise<FileEntry[]> {
    return this.http.json<FileEntry[]>('GET', this.file('/list', { path, depth: o.depth }), undefined, o)
  }

  stat(path: string, o: RequestOptions = {}): Promise<FileEntry> {
    return this.http.json<FileEntry>('GET', this.file('/stat', { path }), undefined, o)
  }

  /** Entries matching a glob pattern (`*`, `?`, `{a,b}`, and a double star for any depth). */
  glob(pattern: string, o: RequestOptions = {}): Promise<FileEntry[]> {
    return this.http.json<FileEntry[]>('GET', this.file('/glob', { pattern }), undefined, o)
  }

  /** Deletes a file, link or directory (`recursive` for a non-empty one). */
  async remove(path: string, o: RequestOptions & { recursive?: boolean } = {}): Promise<void> {
    await this.http.json('DELETE', this.file('', { path, recursive: o.recursive }), undefined, o)
  }

  async move(from: string, to: string, o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.file('/move', {}), { from, to }, o)
  }

  async mkdir(path: string, o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.file('/mkdir', {}), { path }, o)
  }

  async chmod(path: string, mode: string, o: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.file('/chmod', {}), { path, mode }, o)
  }

  /**
   * Calls `onEvent` for each change under `path` until the returned stop() is called (or
   * `signal` aborts). Resolves once the watch is set up in the VM.
   */
  async watch(path: string, onEvent: (e: FileEvent) => void, o: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<{ stop: () => void; done: Promise<void> }> {
    const ac = new AbortController()
    const signal = o.signal ? AbortSignal.any([o.signal, ac.signal]) : ac.signal
    // No timeout: a watch lasts as long as the caller wants it.
    const res = await this.http.send('GET', this.file('/watch', { path, recursive: o.recursive }), undefined, { signal, timeoutMs: 2 ** 31 - 1 })
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    let ready!: () => void
    const isReady = new Promise<void>((r) => (ready = r))
    const done = (async () => {
      let buf = ''
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buf += value
          let at: number
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const data = /^data: (.*)$/m.exec(buf.slice(0, at))?.[1]
            buf = buf.slice(at + 2)
            if (!data) continue
            const e = JSON.parse(data) as FileEvent | { type: 'ready' }
            if (e.type === 'ready') ready()
            else onEvent(e)
          }
        }
      } catch (err) {
        if (!signal.aborted) throw err
      } finally {
        ready()
      }
    })()
    await isReady
    return { stop: () => ac.abort(), done }
  }

  /**
   * Unpacks a tar.gz into `dest` (a directory under /workspace, made if missing). Given a local
   * directory's path instead (Node, Deno, Bun), its contents are packed and sent as they are read.
   */
  async upload(source: string | Uint8Array | Blob | ReadableStream<Uint8Array>, dest = '/workspace', o: RequestOptions = {}): Promise<void> {
    const packed = typeof source === 'string' ? await packDir(source) : undefined
    const body = packed ? packed.body : (source as Uint8Array | Blob | ReadableStream<Uint8Array>)
    const res = await this.http.send('POST', `/v1/vms/${encodeURIComponent(this.id)}/files/upload${q({ dest })}`, { body: body as BodyInit, type: 'application/gzip' }, o)
    await res.body?.cancel()
    await packed?.done
  }

  /**
   * `path` (a file or a directory) as a tar.gz stream; or, given a local directory `dir` (Node,
   * Deno, Bun), unpacked into it: a directory's contents land in `dir`, a file as `dir/<name>`.
   */
  download(path: string, o?: RequestOptions): Promise<ReadableStream<Uint8Array>>
  download(path: string, dir: string, o?: RequestOptions): Promise<void>
  async download(path: string, dirOrOptions?: string | RequestOptions, options: RequestOptions = {}): Promise<ReadableStream<Uint8Array> | void> {
    const o = typeof dirOrOptions === 'string' ? options : (dirOrOptions ?? {})
    const res = await this.http.send('GET', `/v1/vms/${encodeURIComponent(this.id)}/files/download${q({ path })}`, undefined, o)
    if (typeof dirOrOptions !== 'string') return res.body!
    await unpackTo(res.body!, dirOrOptions)
  }

  /** `path` as a tar.gz, whole. */
  async downloadBytes(path: string, o: RequestOptions = {}): Promise<Uint8Array> {
    const res = await this.http.send('GET', `/v1/vms/${encodeURIComponent(this.id)}/files/download${q({ path })}`, undefined, o)
    return new Uint8Array(await res.arrayBuffer())
  }
}

/** Background processes: they outlive the call that started them (and a manager restart). */
export class SandboxProcesses extends SandboxPart {
  private proc(rest = ''): string {
    return `/v1/vms/${encodeURIComponent(this.id)}/processes${rest}`
  }

  start(o: ProcessStartOptions, r: RequestOptions = {}): Promise<ProcessInfo> {
    return this.http.json<ProcessInfo>('POST', this.proc(), o, r)
  }
  list(r: RequestOptions = {}): Promise<ProcessInfo[]> {
    return this.http.json<ProcessInfo[]>('GET', this.proc(), undefined, r)
  }
  get(pid: number, r: RequestOptions = {}): Promise<ProcessInfo> {
    return this.http.json<ProcessInfo>('GET', this.proc(`/${pid}`), undefined, r)
  }

  /**
   * The process's output as events, from byte `since` (what is still kept); with `follow`, new
   * output as it comes until the exit event. Break out of the loop (or abort) to stop reading.
   */
  async *output(pid: number, o: { since?: number; follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<OutputEvent> {
    const res = await this.http.send('GET', this.proc(`/${pid}/output${q({ since: o.since, follow: o.follow })}`), undefined, { signal: o.signal, timeoutMs: 2 ** 31 - 1 })
    yield* readEvents(res.body!)
  }

  /** Writes to the process's stdin (started with `stdin: true`); `eof` closes it after. */
  async sendStdin(pid: number, data: string | Uint8Array, o: RequestOptions & { eof?: boolean } = {}): Promise<void> {
    const res = await this.http.send('POST', this.proc(`/${pid}/stdin${q({ eof: o.eof })}`), { body: data as BodyInit, type: 'application/octet-stream' }, o)
    await res.body?.cancel()
  }

  async signal(pid: number, signal: ProcessSignal, r: RequestOptions = {}): Promise<void> {
    await this.http.json('POST', this.proc(`/${pid}/signal`), { signal }, r)
  }

  /** Kills the process group and everything it started; it stays listed as exited. */
  async kill(pid: number, r: RequestOptions = {}): Promise<void> {
    await this.http.json('DELETE', this.proc(`/${pid}`), undefined, r)
  }

  /**
   * A live connection to the process (WebSocket): output as it comes to `onData`, `send` to its
   * stdin, `resize` and `kill` (a signal), `exited` for its exit code; `close` detaches.
   */
  attach(pid: number, o: AttachOptions = {}): Promise<ProcessConnection> {
    return ProcessConnection.open(this.http, this.id, pid, o)
  }
}

/** Interactive terminals: a process on a pseudo-terminal, attached at once. */
export class SandboxPty extends SandboxPart {
  /** Starts `cmd` (default a login bash) on a terminal of `cols`×`rows` and attaches to it. */
  async create(o: PtyOptions & AttachOptions): Promise<ProcessConnection> {
    const { cols, rows, cmd, args, cwd, env, tag, timeoutMs, ...attach } = o
    const start = { ...(cmd ? { cmd } : { args: args ?? ['bash', '-l'] }), pty: { cols, rows }, ...(cwd ? { cwd } : {}), ...(env ? { env } : {}), ...(tag ? { tag } : {}), ...(timeoutMs ? { timeoutMs } : {}) }
    const p = await this.http.json<ProcessInfo>('POST', `/v1/vms/${encodeURIComponent(this.id)}/processes`, start, { signal: attach.signal })
    return ProcessConnection.open(this.http, this.id, p.pid, attach)
  }
}

/** Live preview urls of the VM's ports: the manager proxies HTTP and WebSocket to them. */
export class SandboxPorts extends SandboxPart {
  private port(port: number, rest: string): string {
    return `/v1/vms/${encodeURIComponent(this.id)}/ports/${port}${rest}`
  }
  /** A url for a browser, with a signed token for this VM and port that expires at `expiresAt`. */
  url(port: number, o: RequestOptions = {}): Promise<PreviewUrl> {
    return this.http.json<PreviewUrl>('GET', this.port(port, '/url'), undefined, o)
  }
  /** Serves the port without a token (`true`) or requires one again (`false`); kept until the VM is deleted. */
  setPublic(port: number, open: boolean, o: RequestOptions = {}): Promise<PortPublicState> {
    return this.http.json<PortPublicState>('POST', this.port(port, '/public'), { public: open }, o)
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
