// The file API's metadata operations: confined here (file-locate.ts), done by the user's file
// worker (sandbox/file-worker.ts). Root only resolves paths; it never opens one of the user's.
import path from 'node:path'
import { MAX_LIST_ENTRIES, type AgentReply, type AgentRequest, type FileEntry } from '@rds/protocol'
import type { AgentContext } from '../context.ts'
import { AgentFailure } from '../errors.ts'
import { locate, planGlob, refuseRoot } from '../sandbox/file-locate.ts'
import type { WorkerOp } from '../worker/file-worker-wire.ts'

/** A worker call whose failure names the public path the caller gave. */
async function ask(ctx: AgentContext, op: WorkerOp, pub: string): Promise<unknown> {
  try {
    return await ctx.fileWorker.call(op)
  } catch (e) {
    if (e instanceof AgentFailure && e.code !== 'internal' && e.code !== 'busy') throw new AgentFailure(e.code, `${pub}: ${e.message}`)
    throw e
  }
}

export async function fileStat(ctx: AgentContext, body: AgentRequest<'fileStat'>): Promise<AgentReply<'fileStat'>> {
  const at = await locate(body.path, ctx.workspacePaths, { follow: false })
  return (await ask(ctx, { op: 'stat', path: at.real, as: at.pub }, at.pub)) as FileEntry
}

export async function fileList(ctx: AgentContext, body: AgentRequest<'fileList'>): Promise<AgentReply<'fileList'>> {
  // A directory is listed through a link to it (inside the workspace), as `ls dir/` would.
  const at = await locate(body.path, ctx.workspacePaths, { follow: true })
  if (at.exists === false) throw new AgentFailure('path_not_found', `${at.pub}: no such file or directory`)
  const entries = (await ask(ctx, { op: 'list', path: at.real, as: at.pub, depth: body.depth ?? 1, max: MAX_LIST_ENTRIES }, at.pub)) as FileEntry[]
  return { entries }
}

export async function fileGlob(ctx: AgentContext, body: AgentRequest<'fileGlob'>): Promise<AgentReply<'fileGlob'>> {
  const plan = planGlob(body.pattern, ctx.workspacePaths.base)
  const startPub = plan.prefix ? path.posix.join(ctx.workspacePaths.base, plan.prefix) : ctx.workspacePaths.base
  const start = await locate(startPub, ctx.workspacePaths, { follow: true })
  if (start.exists === false) return { entries: [] }
  const entries = (await ask(ctx, { op: 'glob', start: start.real, as: startPub, pattern: plan.pattern, prefix: plan.prefix, max: MAX_LIST_ENTRIES }, startPub)) as FileEntry[]
  return { entries }
}

export async function fileDelete(ctx: AgentContext, body: AgentRequest<'fileDelete'>): Promise<undefined> {
  const at = await locate(body.path, ctx.workspacePaths, { follow: false })
  refuseRoot(at, 'delete')
  await ask(ctx, { op: 'delete', path: at.real, recursive: body.recursive === true }, at.pub)
  return undefined
}

export async function fileMove(ctx: AgentContext, body: AgentRequest<'fileMove'>): Promise<undefined> {
  const from = await locate(body.from, ctx.workspacePaths, { follow: false, what: 'from' })
  const to = await locate(body.to, ctx.workspacePaths, { follow: false, what: 'to' })
  refuseRoot(from, 'move')
  refuseRoot(to, 'replace')
  await ask(ctx, { op: 'move', from: from.real, to: to.real }, from.pub)
  return undefined
}

export async function fileMkdir(ctx: AgentContext, body: AgentRequest<'fileMkdir'>): Promise<undefined> {
  const at = await locate(body.path, ctx.workspacePaths, { follow: true })
  await ask(ctx, { op: 'mkdir', path: at.real }, at.pub)
  return undefined
}

export async function fileChmod(ctx: AgentContext, body: AgentRequest<'fileChmod'>): Promise<undefined> {
  const at = await locate(body.path, ctx.workspacePaths, { follow: true })
  if (at.exists === false) throw new AgentFailure('path_not_found', `${at.pub}: no such file or directory`)
  await ask(ctx, { op: 'chmod', path: at.real, mode: parseInt(body.mode, 8) }, at.pub)
  return undefined
}
