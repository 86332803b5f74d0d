// The real agent on the host in test mode (Unix socket instead of the virtio port, temp dirs
// instead of /workspace, a host build of rds-exec), for test files that drive one over HTTP/2.
// Needs root (uid 1000 must be reachable by setuid) and gcc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import type http2 from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { BODY_BYTES_TRAILER } from '@rds/protocol'
import { connectAgent } from './agent-client.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const repo = path.resolve(here, '../../../..')
const helperSrc = path.join(repo, 'guest/init/rds-exec.c')

export const canRunHostAgent = process.getuid?.() === 0 && spawnSync('gcc', ['--version']).status === 0 && fs.existsSync(helperSrc)

export interface HostAgentOptions {
  /** Temp directory prefix (names the test in /tmp). */
  prefix?: string
  /** Run commands in cgroups under a cgroup of their own (cgroup v2), removed at stop. */
  cgroups?: boolean
  /** Give the agent the repository's Deno (for run-ts). */
  deno?: boolean
}

export interface HostAgent {
  root: string
  /** The workspace directory (what the agent calls /workspace... under this name). */
  ws: string
  /** Its Unix socket (connect again with connectAgent). */
  sock: string
  /** The cgroup its commands run under ('' without `cgroups` or without cgroup v2). */
  cgroupRoot: string
  session: http2.ClientHttp2Session
  /** The agent process (its children are the processes it started). */
  pid: number
  log(): string
  stop(): Promise<void>
}

function findCgroup2(): string {
  for (const m of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) if (fs.existsSync(path.join(m, 'cgroup.controllers'))) return m
  return ''
}

/** Kills whatever a test left in the cgroups, then removes them. */
async function removeCgroups(cgroupRoot: string): Promise<void> {
  for (const d of [path.join(cgroupRoot, 'rds'), cgroupRoot]) {
    if (!fs.existsSync(d)) continue
    for (const e of fs.readdirSync(d).filter((n) => n.startsWith('exec-'))) {
      fs.writeFileSync(path.join(d, e, 'cgroup.kill'), '1')
      for (let i = 0; i < 200 && !fs.readFileSync(path.join(d, e, 'cgroup.events'), 'utf8').includes('populated 0'); i++) await new Promise((r) => setTimeout(r, 50))
      fs.rmdirSync(path.join(d, e))
    }
  }
  if (fs.existsSync(path.join(cgroupRoot, 'rds'))) fs.rmdirSync(path.join(cgroupRoot, 'rds'))
  fs.rmdirSync(cgroupRoot)
}

export async function startHostAgent(o: HostAgentOptions = {}): Promise<HostAgent> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), o.prefix ?? 'rds-agent-host-'))
  fs.chmodSync(root, 0o755)
  const ws = path.join(root, 'home')
  fs.mkdirSync(ws)
  fs.chownSync(ws, 1000, 1000)
  fs.mkdirSync(path.join(root, 'tmp'), { mode: 0o1777 })
  fs.chmodSync(path.join(root, 'tmp'), 0o1777)
  const helper = path.join(root, 'rds-exec')
  const cc = spawnSync('gcc', ['-O2', '-o', helper, helperSrc], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`cannot build rds-exec: ${cc.stderr}`)
  const cg = o.cgroups ? findCgroup2() : ''
  const cgroupRoot = cg ? path.join(cg, `rds-agent-test-${process.pid}-${path.basename(root)}`) : ''
  if (cgroupRoot) fs.mkdirSync(cgroupRoot)
  const sock = path.join(root, 'agent.sock')
  let log = ''
  const agent: ChildProcess = spawn(process.execPath, [path.join(here, '../../src/main.ts')], {
    env: {
      PATH: process.env.PATH,
      RDS_AGENT_LISTEN_UNIX: sock,
      RDS_AGENT_WORKSPACE: ws,
      RDS_AGENT_HOME: ws,
      RDS_AGENT_TMP: path.join(root, 'tmp'),
      RDS_AGENT_VAR_TMP: path.join(root, 'tmp'),
      RDS_AGENT_STATE_DIR: path.join(root, 'state'),
      RDS_AGENT_SPOOL_DIR: path.join(root, 'spool-root', 'spool'),
      RDS_AGENT_EXEC_HELPER: helper,
      RDS_AGENT_CGROUP_ROOT: cgroupRoot,
      ...(o.deno ? { RDS_AGENT_DENO: path.join(repo, 'node_modules/@deno/linux-x64-glibc/deno') } : {}),
      RDS_AGENT_NODE: process.execPath,
      RDS_AGENT_FILE_WORKER: path.join(repo, 'packages/agent/src/worker/file-worker.ts'),
      RDS_AGENT_SET_CLOCK: 'false',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  agent.stdout!.on('data', (c) => (log += c))
  agent.stderr!.on('data', (c) => (log += c))
  for (let i = 0; i < 400 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50))
  if (!fs.existsSync(sock)) throw new Error(`agent did not start:\n${log}`)
  // The socket file appears at bind(), a moment before listen(): on a loaded host a first connect
  // can be refused.
  let session: Awaited<ReturnType<typeof connectAgent>> | undefined
  for (let i = 0; !session; i++) {
    session = await connectAgent(sock).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNREFUSED' || i >= 100) throw err
      return new Promise<undefined>((r) => setTimeout(() => r(undefined), 50))
    })
  }
  return {
    root,
    ws,
    sock,
    cgroupRoot,
    session,
    pid: agent.pid!,
    log: () => log,
    async stop() {
      session.close()
      agent.kill('SIGTERM')
      if (agent.exitCode === null) await new Promise((r) => agent.once('exit', r))
      if (cgroupRoot) await removeCgroups(cgroupRoot)
      fs.rmSync(root, { recursive: true, force: true })
    },
  }
}

/** A streamed request body as the manager sends one: ended, then confirmed by its length trailer. */
export function putBody(session: http2.ClientHttp2Session, path: string, body: string | Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(body)
    const req = session.request({ ':method': 'PUT', ':path': path, 'content-type': 'application/octet-stream' }, { waitForTrailers: true })
    req.once('wantTrailers', () => req.sendTrailers({ [BODY_BYTES_TRAILER]: String(data.length) }))
    let status = 0
    let text = ''
    req.on('response', (h) => (status = Number(h[':status'])))
    req.on('data', (c: Buffer) => (text += c.toString()))
    req.on('end', () => resolve({ status, body: text }))
    req.on('error', reject)
    req.end(data)
  })
}
