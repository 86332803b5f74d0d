import fs from 'node:fs'
import type { ExecRequest, ExecResult } from '@rds/protocol'
import { DEFAULT_EXEC_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES } from '../config.ts'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { baseEnv, checkEnvRecord } from '../sandbox/env.ts'
import { resolveExisting } from '../sandbox/paths.ts'
import { collect, spawnAsUser, type Collected } from '../sandbox/spawn.ts'

export async function handleExec(ctx: AgentContext, req: ExecRequest): Promise<ExecResult> {
  if (req.asRoot && !ctx.testRoot) throw new AgentFailure('invalid_request', 'asRoot is only available in guests booted for tests (rds.test_root=1)')
  const env = { ...baseEnv(ctx.config), ...checkEnvRecord(req.env) }
  const cwd = await resolveCwd(ctx, req.cwd)
  const shell = fs.existsSync(ctx.config.bash) ? ctx.config.bash : ctx.config.sh
  const proc = spawnAsUser(ctx.config, ctx.cgroups, { argv: [shell, '-c', req.cmd], env, cwd, asRoot: req.asRoot === true })
  const c = await collect(proc, {
    timeoutMs: req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS,
    maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
  })
  return toExecResult(c)
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
