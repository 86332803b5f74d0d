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
import { runtimeArgv, runtimeEnv } from '../run/runtime-launch.ts'
import { warmShapeFor, type WarmShape } from '../run/warm-fit.ts'
import { MAX_GO_MESSAGE_BYTES } from '../run/warm-runtimes.ts'
import { wrapperSource } from '../run/wrappers.ts'
import { parseEnvList } from '../sandbox/env.ts'
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
    run.finish()
  }
}

/** The streamed twin: output as events while it runs, the result (or error) on the exit event. */
export async function handleRunStream(ctx: AgentContext, req: RunRequest, res: Http2ServerResponse): Promise<void> {
  const run = await startRun(ctx, req)
  try {
    await streamOutput(run.proc, res, { ...limitsOf(req), side: { stream: run.resultPipe, maxBytes: MAX_RUN_RESULT_BYTES }, transform: run.strip, finish: parseResultMessage })
  } finally {
    run.finish()
  }
}

const limitsOf = (req: RunRequest) => ({ timeoutMs: req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES })

interface StartedRun {
  proc: UserProcess
  resultPipe: Readable
  /** Deno output loses its colour escapes. */
  strip: ((s: string) => string) | undefined
  /** Once the run is over: removes its root-only run dir and starts the next warm runtime. */
  finish(): void
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
  const strip = req.runtime === 'deno' ? (s: string) => s.replace(ANSI, '') : undefined
  const shape = warmShapeFor(req, userEnv, cwd === ctx.workspacePaths.base)
  const refill = () => shape && ctx.warmRuntimes.refill(shape)

  const message = JSON.stringify({ target: target ?? '', env: [...userEnv] })
  const warm = shape && Buffer.byteLength(message) + 200 < MAX_GO_MESSAGE_BYTES ? ctx.warmRuntimes.take(shape) : undefined
  if (warm) {
    const finish = () => {
      warm.close()
      fs.rmSync(warm.runDir, { recursive: true, force: true })
      refill()
    }
    try {
      if (req.code !== undefined) target = writeSnippet(warm.runDir, req.runtime, req.code)
      warm.start({ target: target!, env: userEnv })
      return { proc: warm.proc, resultPipe: warm.resultPipe, strip, finish }
    } catch (e) {
      warm.proc.killAll()
      finish()
      throw e
    }
  }

  const runDir = path.join(ctx.runsDir, randomUUID())
  fs.mkdirSync(runDir, { mode: 0o755 })
  const finish = () => {
    fs.rmSync(runDir, { recursive: true, force: true })
    refill()
  }
  try {
    fs.chmodSync(runDir, 0o755) // umask must not decide what the user can traverse
    if (req.code !== undefined) target = writeSnippet(runDir, req.runtime, req.code)
    const wrapper = path.join(runDir, 'wrapper.mjs')
    writeRootFile(wrapper, wrapperSource(req.runtime, target!))

    const launch = { runtime: req.runtime, allowNet: req.allowNet === true, envKeys: [...userEnv.keys()], flags: req.flags ?? [], args: req.args ?? [] }
    const argv = runtimeArgv(ctx.config, launch, runDir, wrapper)
    const env = runtimeEnv(ctx.config, req.runtime)
    for (const [k, v] of userEnv) env[k] = v

    const pipe = await createResultPipe(runDir, ctx.config.uid, ctx.config.gid, ctx.config.mkfifo)
    let proc
    try {
      proc = spawnAsUser(ctx, { argv, env, cwd, fd3: pipe.writeFd })
    } finally {
      fs.closeSync(pipe.writeFd)
    }
    return { proc, resultPipe: pipe.reader, strip, finish }
  } catch (e) {
    fs.rmSync(runDir, { recursive: true, force: true })
    throw e
  }
}

/** The snippet goes next to the wrapper; returns its file: URL. */
function writeSnippet(runDir: string, runtime: WarmShape['runtime'], code: string): string {
  // .js lets Node pick ESM or CommonJS by syntax, as a snippet in the original did.
  const snippet = path.join(runDir, runtime === 'deno' ? 'snippet.ts' : 'snippet.js')
  writeRootFile(snippet, code)
  return pathToFileURL(snippet).href
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
