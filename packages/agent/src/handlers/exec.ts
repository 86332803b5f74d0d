import fs from 'node:fs'
import type { Http2ServerResponse } from 'node:http2'
import type { ExecRequest, ExecResult } from '@rds/protocol'
import { DEFAULT_EXEC_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { baseEnv, checkEnvRecord } from '../sandbox/env.ts'
import { resolveExisting } from '../sandbox/paths.ts'
import { collect, spawnAsUser, type Collected, type UserProcess } from '../sandbox/spawn.ts'
import { streamOutput } from '../sandbox/stream-output.ts'

export async function handleExec(ctx: AgentContext, req: ExecRequest): Promise<ExecResult> {
  const c = await collect(await spawnExec(ctx, req), limitsOf(req))
  return toExecResult(c)
}

/** The streamed twin: the same command, its output written as events while it runs. */
export async function handleExecStream(ctx: AgentContext, req: ExecRequest, res: Http2ServerResponse): Promise<void> {
  const proc = await spawnExec(ctx, req)
  await streamOutput(proc, res, limitsOf(req))
}

/** Everything is checked before the child starts, so a refusal is still an ordinary error reply. */
async function spawnExec(ctx: AgentContext, req: ExecRequest): Promise<UserProcess> {
  if (req.asRoot && !ctx.testRoot) throw new AgentFailure('invalid_request', 'asRoot is only available in guests booted for tests (rds.test_root=1)')
  const argv = argvOf(ctx, req)
  const env = { ...baseEnv(ctx.config), ...checkEnvRecord(req.env) }
  const cwd = await resolveCwd(ctx, req.cwd)
  return spawnAsUser(ctx, { argv, env, cwd, asRoot: req.asRoot === true })
}

const limitsOf = (req: ExecRequest) => ({ timeoutMs: req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES })

/**
 * `cmd` goes to bash; `args` is the argv itself, handed to execvp in rds-exec (after the switch
 * to the user, so args[0] is found on the user's PATH), and no shell ever reads it.
 */
function argvOf(ctx: AgentContext, req: ExecRequest): string[] {
  if ((req.cmd === undefined) === (req.args === undefined)) throw new AgentFailure('invalid_request', 'exactly one of cmd and args is required')
  if (req.args !== undefined) {
    // execve takes C strings: a NUL would cut an argument short instead of arriving unchanged.
    if (req.args.some((a) => a.includes('\0'))) throw new AgentFailure('invalid_request', 'args must not contain NUL characters')
    return req.args
  }
  const shell = fs.existsSync(ctx.config.bash) ? ctx.config.bash : ctx.config.sh
  return [shell, '-c', req.cmd!]
}

export async function resolveCwd(ctx: AgentContext, cwd: string | undefined): Promise<string> {
  if (cwd === undefined) return ctx.workspacePaths.base
  const dir = await resolveExisting(cwd, ctx.workspacePaths, 'cwd')
  if (!fs.statSync(dir).isDirectory()) throw new AgentFailure('invalid_request', `cwd ${JSON.stringify(cwd)} is not a directory`)
  return dir
}

/** Result semantics of the original agent: timeout -> exitCode -1 and a marker line on stderr. */
export function toExecResult(c: Collected, transform: (s: string) => string = (s) => s): ExecResult {
  let stderr = transform(c.stderr.toString('utf8'))
  if (c.spawnError) stderr += `${stderr ? '\n' : ''}${c.spawnError}`
  if (c.timedOut) stderr += '\nTimeout exceeded'
  return {
    exitCode: c.exitCode,
    stdout: transform(c.stdout.toString('utf8')),
    stderr,
    timedOut: c.timedOut,
    stdoutTruncated: c.stdoutTruncated,
    stderrTruncated: c.stderrTruncated,
    durationMs: c.durationMs,
  }
}
