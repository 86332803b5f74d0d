// The agent's process routes: start, list, get, output, stdin, signal, resize, kill. The table
// lives in the agent context, so processes outlive any manager session and end with the VM.
import fs from 'node:fs'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { NDJSON, type ProcessInfo, type ProcessOutputQuery, type ProcessRef, type ProcessResizeRequest, type ProcessSignalRequest, type ProcessStartRequest, type ProcessStdinQuery } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { BackgroundProcess } from '../processes/background-process.ts'
import { streamOutput } from '../processes/output-reader.ts'
import { baseEnv, checkEnvRecord } from '../sandbox/env.ts'
import { spawnAsUser } from '../sandbox/spawn.ts'
import { resolveCwd } from './exec.ts'

export async function handleProcessStart(ctx: AgentContext, req: ProcessStartRequest): Promise<ProcessInfo> {
  if ((req.cmd === undefined) === (req.args === undefined)) throw new AgentFailure('invalid_request', 'exactly one of cmd and args is required')
  ctx.processes.checkRoom()
  const env = { ...baseEnv(ctx.config), ...(req.pty ? { TERM: 'xterm-256color' } : {}), ...checkEnvRecord(req.env) }
  const cwd = await resolveCwd(ctx, req.cwd)
  const shell = fs.existsSync(ctx.config.bash) ? ctx.config.bash : ctx.config.sh
  const argv = req.args ?? [shell, '-c', req.cmd!]
  const proc = spawnAsUser(ctx, {
    argv,
    env,
    cwd,
    stdinFd: req.stdin || req.pty ? 'pipe' : undefined,
    ...(req.pty ? { pty: req.pty, fd3: 'pipe' as const } : {}),
  })
  await new Promise<void>((resolve, reject) => {
    proc.child.once('spawn', resolve)
    proc.child.once('error', (e) => {
      proc.release()
      reject(new AgentFailure('internal', `could not start the process: ${e.message}`))
    })
  })
  const p = new BackgroundProcess(proc, { cmd: req.cmd ?? argv.join(' '), args: req.args, tag: req.tag, timeoutMs: req.timeoutMs, stdin: req.stdin === true, pty: req.pty })
  ctx.processes.add(p)
  return p.info()
}

export async function handleProcessGet(ctx: AgentContext, req: ProcessRef): Promise<ProcessInfo> {
  return ctx.processes.get(req.pid).info()
}

export async function handleProcessSignal(ctx: AgentContext, req: ProcessSignalRequest): Promise<undefined> {
  const p = ctx.processes.get(req.pid)
  if (!p.running) throw new AgentFailure('process_state', `process ${req.pid} has exited`)
  p.signal(req.signal)
  return undefined
}

export async function handleProcessResize(ctx: AgentContext, req: ProcessResizeRequest): Promise<undefined> {
  const p = ctx.processes.get(req.pid)
  if (!p.running) throw new AgentFailure('process_state', `process ${req.pid} has exited`)
  if (!p.resize({ cols: req.cols, rows: req.rows })) throw new AgentFailure('process_state', `process ${req.pid} has no terminal (start it with pty)`)
  return undefined
}

export async function handleProcessKill(ctx: AgentContext, req: ProcessRef): Promise<undefined> {
  const p = ctx.processes.get(req.pid)
  // Also after the main process exited: what it left running in its cgroup dies too.
  p.kill()
  return undefined
}

export async function handleProcessOutput(ctx: AgentContext, res: Http2ServerResponse, q: ProcessOutputQuery): Promise<void> {
  const p = ctx.processes.get(q.pid)
  const abort = new AbortController()
  res.once('close', () => abort.abort())
  res.writeHead(200, { 'content-type': NDJSON })
  await streamOutput(p, res, { since: q.since ?? 0, stderrSince: q.stderrSince ?? q.since ?? 0, follow: q.follow === 'true' }, abort.signal)
  if (!res.closed) res.end()
}

/** Writes the body to the process's stdin as it arrives (flow-controlled by the pipe); eof closes it after. */
export async function handleProcessStdin(ctx: AgentContext, req: Http2ServerRequest, q: ProcessStdinQuery): Promise<void> {
  const p = ctx.processes.get(q.pid)
  const stdin = p.stdin
  if (!stdin) throw new AgentFailure('process_state', `process ${q.pid} has no stdin pipe (start it with stdin: true)`)
  if (!p.running || stdin.writableEnded || stdin.destroyed) throw new AgentFailure('process_state', `the stdin of process ${q.pid} is closed`)
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (stdin.destroyed || stdin.writableEnded) continue // the program closed it or exited: the rest is read and dropped
    if (!stdin.write(chunk)) await new Promise<void>((resolve) => {
      const done = () => {
        stdin.off('drain', done)
        stdin.off('close', done)
        resolve()
      }
      stdin.on('drain', done)
      stdin.on('close', done)
    })
  }
  if (q.eof === 'true' && !stdin.writableEnded) stdin.end()
}
