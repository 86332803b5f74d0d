import { randomUUID } from 'node:crypto'
import fs from 'node:fs'
import type { Http2ServerResponse } from 'node:http2'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import type { RunRequest, RunResult } from '@rds/protocol'
import { DEFAULT_EXEC_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES, MAX_RUN_RESULT_BYTES } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { createResultPipe } from '../run/result-pipe.ts'
import { wrapperSource } from '../run/wrappers.ts'
import { baseEnv, parseEnvList } from '../sandbox/env.ts'
import { resolveExisting } from '../sandbox/paths.ts'
import { collect, spawnAsUser, type Collected, type UserProcess } from '../sandbox/spawn.ts'
import { streamOutput } from '../sandbox/stream-output.ts'
import { toExecResult } from './exec.ts'

// Deno is told NO_COLOR, but the original agent stripped escapes from Deno output; keep that.
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

export async function handleRun(ctx: AgentContext, req: RunRequest): Promise<RunResult> {
  const run = await startRun(ctx, req)
  try {
    const c = await collect(run.proc, { ...limitsOf(req), side: { stream: run.resultPipe, maxBytes: MAX_RUN_RESULT_BYTES } })
    return { ...toExecResult(c, run.strip), ...parseResultMessage(c) }
  } finally {
    fs.rmSync(run.runDir, { recursive: true, force: true })
  }
}

/** The streamed twin: output as events while it runs, the result (or error) on the exit event. */
export async function handleRunStream(ctx: AgentContext, req: RunRequest, res: Http2ServerResponse): Promise<void> {
  const run = await startRun(ctx, req)
  try {
    await streamOutput(run.proc, res, { ...limitsOf(req), side: { stream: run.resultPipe, maxBytes: MAX_RUN_RESULT_BYTES }, transform: run.strip, finish: parseResultMessage })
  } finally {
    fs.rmSync(run.runDir, { recursive: true, force: true })
  }
}

const limitsOf = (req: RunRequest) => ({ timeoutMs: req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES })

interface StartedRun {
  proc: UserProcess
  resultPipe: Readable
  /** Deno output loses its colour escapes. */
  strip: ((s: string) => string) | undefined
  /** Root-only wrapper dir; the caller removes it when the run is over. */
  runDir: string
}

async function startRun(ctx: AgentContext, req: RunRequest): Promise<StartedRun> {
  if ((req.code === undefined) === (req.path === undefined)) {
    throw new AgentFailure('invalid_request', 'exactly one of code and path is required')
  }
  const userEnv = parseEnvList(req.env)
  let target: string | undefined
  let cwd = ctx.workspacePaths.base
  if (req.path !== undefined) {
    const file = await resolveExisting(req.path, ctx.workspacePaths, 'path')
    if (!fs.statSync(file).isFile()) throw new AgentFailure('invalid_request', `path ${JSON.stringify(req.path)} is not a file`)
    target = pathToFileURL(file).href
    cwd = path.dirname(file)
  }

  const runDir = path.join(ctx.runsDir, randomUUID())
  fs.mkdirSync(runDir, { mode: 0o755 })
  try {
    fs.chmodSync(runDir, 0o755) // umask must not decide what the user can traverse
    if (req.code !== undefined) {
      // .js lets Node pick ESM or CommonJS by syntax, as a snippet in the original did.
      const snippet = path.join(runDir, req.runtime === 'deno' ? 'snippet.ts' : 'snippet.js')
      writeRootFile(snippet, req.code)
      target = pathToFileURL(snippet).href
    }
    const wrapper = path.join(runDir, 'wrapper.mjs')
    writeRootFile(wrapper, wrapperSource(req.runtime, target!))

    const argv = req.runtime === 'deno' ? denoArgv(ctx, req, runDir, wrapper, [...userEnv.keys()]) : [ctx.config.node, ...(req.flags ?? []), wrapper, ...(req.args ?? [])]
    const env: Record<string, string> = { ...baseEnv(ctx.config) }
    if (req.runtime === 'deno') Object.assign(env, { DENO_DIR: path.join(ctx.config.workspace, '.deno'), NO_COLOR: '1' })
    for (const [k, v] of userEnv) env[k] = v

    const pipe = await createResultPipe(runDir, ctx.config.uid, ctx.config.gid, ctx.config.mkfifo)
    let proc
    try {
      proc = spawnAsUser(ctx.config, ctx.cgroups, { argv, env, cwd, fd3: pipe.writeFd })
    } finally {
      fs.closeSync(pipe.writeFd)
    }
    const strip = req.runtime === 'deno' ? (s: string) => s.replace(ANSI, '') : undefined
    return { proc, resultPipe: pipe.reader, strip, runDir }
  } catch (e) {
    fs.rmSync(runDir, { recursive: true, force: true })
    throw e
  }
}

/** Files outside the writable dirs that network code needs (name resolution, TLS roots). */
const DENO_READ_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs/ca-certificates.crt']

// The original's permission set: /workspace, /tmp and /var/tmp readable and writable (never the
// workspace's other name, /home/user), bare --allow-env unless an env list names the keys, and
// the network whenever the VM has any egress. Beyond it: the run dir holding the wrapper, the
// result pipe on fd 3 and the peer bridge socket.
function denoArgv(ctx: AgentContext, req: RunRequest, runDir: string, wrapper: string, envKeys: string[]): string[] {
  const { workspace, tmp, varTmp, peerBridgeSocket } = ctx.config
  const dirs = [workspace, tmp, varTmp]
  const argv = [
    ctx.config.deno,
    'run',
    '--quiet',
    '--no-prompt',
    // Deno asks for read+write to connect to a Unix socket (peer proxies).
    `--allow-read=${[...dirs, ...DENO_READ_FILES, runDir, peerBridgeSocket].join(',')}`,
    `--allow-write=${[...dirs, '/proc/self/fd/3', peerBridgeSocket].join(',')}`,
    envKeys.length ? `--allow-env=${envKeys.join(',')}` : '--allow-env',
    // Without general network access the peer bridge socket stays reachable (Deno checks net,
    // read and write permissions for a Unix socket connect).
    req.allowNet ? '--allow-net' : `--allow-net=unix:${peerBridgeSocket}`,
  ]
  argv.push(...(req.flags ?? []), wrapper, ...(req.args ?? []))
  return argv
}

function writeRootFile(file: string, content: string): void {
  // wx: the run dir is brand new and root-only writable, so the file must not exist yet.
  fs.writeFileSync(file, content, { mode: 0o644, flag: 'wx' })
  fs.chmodSync(file, 0o644)
}

/** `{result?, error?}` as written by the wrapper; anything else is reported, never thrown. */
export function parseResultMessage(c: Pick<Collected, 'side' | 'sideTruncated'>): Pick<RunResult, 'result' | 'error'> {
  if (c.sideTruncated) return { error: { name: 'ResultError', message: `result larger than ${MAX_RUN_RESULT_BYTES} bytes` } }
  if (!c.side || c.side.length === 0) return {}
  let msg: unknown
  try {
    msg = JSON.parse(c.side.toString('utf8'))
  } catch {
    return { error: { name: 'ResultError', message: 'result channel carried invalid JSON' } }
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return { error: { name: 'ResultError', message: 'result channel carried a non-object message' } }
  }
  const out: Pick<RunResult, 'result' | 'error'> = {}
  if ('result' in msg) out.result = (msg as { result: unknown }).result
  if ('error' in msg) out.error = (msg as { error: unknown }).error
  return out
}
