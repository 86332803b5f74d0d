// The control API, routed by the protocol's table (AgentRoutes): each request is checked against
// its route's schema before a handler sees it, and answered with the route's success status.
import http2 from 'node:http2'
import { AgentRoutes, decodeQuery, NoBody, type AgentCallName, type AgentQuery, type AgentReply, type AgentRequest, type AgentRouteName } from '@rds/protocol'
import { HTTP2_WINDOW_BYTES } from './config.ts'
import type { AgentContext } from './context.ts'
import { AgentFailure } from './errors.ts'
import { handleExec, handleExecStream } from './handlers/exec.ts'
import { handleDownload, handleUpload } from './handlers/files.ts'
import { fileChmod, fileDelete, fileGlob, fileList, fileMkdir, fileMove, fileStat } from './handlers/file-ops.ts'
import { handleFileRead } from './handlers/file-read.ts'
import { handleFileWatch } from './handlers/file-watch.ts'
import { handleFileWrite } from './handlers/file-write.ts'
import { handleHealth } from './handlers/health.ts'
import { handleInit } from './handlers/init.ts'
import { handleRun, handleRunStream } from './handlers/run.ts'
import { handleProcessGet, handleProcessKill, handleProcessOutput, handleProcessResize, handleProcessSignal, handleProcessStart, handleProcessStdin } from './handlers/processes.ts'
import { requestShutdown } from './handlers/shutdown.ts'
import { handlePeersInstall } from './peers/install.ts'
import { checkRequest, readJson, sendError, sendJson } from './http/respond.ts'
import { log } from './log.ts'

type Route = (ctx: AgentContext, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, query: URLSearchParams) => Promise<void>

/** A route whose request and reply are JSON (or nothing). */
function call<R extends AgentCallName>(name: R, handle: (ctx: AgentContext, body: AgentRequest<R>) => Promise<AgentReply<R>>): Route {
  const route = AgentRoutes[name]
  return async (ctx, req, res) => {
    const body = checkRequest<AgentRequest<R>>(route.request, route.request === NoBody ? undefined : await readJson(req))
    const reply = await handle(ctx, body)
    if (route.reply === NoBody) {
      res.writeHead(route.status)
      res.end()
    } else sendJson(res, route.status, reply)
  }
}

type QueryRouteName = 'upload' | 'peersInstall' | 'download' | 'fileRead' | 'fileWrite' | 'fileWatch' | 'processOutput' | 'processStdin'

const queryOf = <R extends QueryRouteName>(name: R, params: URLSearchParams): AgentQuery<R> => {
  const schema = AgentRoutes[name].query
  return checkRequest<AgentQuery<R>>(schema, decodeQuery(schema, params))
}

/** A route whose request body is a byte stream (the handler reads it) and whose reply is nothing. */
function rawBody<R extends QueryRouteName>(name: R, handle: (ctx: AgentContext, body: http2.Http2ServerRequest, query: AgentQuery<R>) => Promise<void>): Route {
  return async (ctx, req, res, q) => {
    await handle(ctx, req, queryOf(name, q))
    res.writeHead(AgentRoutes[name].status)
    res.end()
  }
}

const ROUTES: Record<AgentRouteName, Route> = {
  health: call('health', async (ctx) => handleHealth(ctx)),
  init: call('init', handleInit),
  exec: call('exec', handleExec),
  run: call('run', handleRun),
  execStream: async (ctx, req, res) => handleExecStream(ctx, checkRequest<AgentRequest<'execStream'>>(AgentRoutes.execStream.request, await readJson(req)), res),
  runStream: async (ctx, req, res) => handleRunStream(ctx, checkRequest<AgentRequest<'runStream'>>(AgentRoutes.runStream.request, await readJson(req)), res),
  shutdown: async (_ctx, _req, res) => {
    res.writeHead(AgentRoutes.shutdown.status)
    // Only once the answer is out: PID 1 starts unmounting at once.
    res.end(() => setTimeout(requestShutdown, 10))
  },
  upload: rawBody('upload', handleUpload),
  peersInstall: rawBody('peersInstall', (ctx, req) => handlePeersInstall(ctx, req)),
  download: (ctx, _req, res, q) => handleDownload(ctx, res, queryOf('download', q)),
  fileRead: (ctx, _req, res, q) => handleFileRead(ctx, res, queryOf('fileRead', q)),
  fileWrite: rawBody('fileWrite', handleFileWrite),
  fileStat: call('fileStat', fileStat),
  fileList: call('fileList', fileList),
  fileGlob: call('fileGlob', fileGlob),
  fileDelete: call('fileDelete', fileDelete),
  fileMove: call('fileMove', fileMove),
  fileMkdir: call('fileMkdir', fileMkdir),
  fileChmod: call('fileChmod', fileChmod),
  fileWatch: (ctx, _req, res, q) => handleFileWatch(ctx, res, queryOf('fileWatch', q)),
  processStart: call('processStart', handleProcessStart),
  processList: call('processList', async (ctx) => ({ processes: ctx.processes.list() })),
  processGet: call('processGet', handleProcessGet),
  processOutput: (ctx, _req, res, q) => handleProcessOutput(ctx, res, queryOf('processOutput', q)),
  processStdin: rawBody('processStdin', handleProcessStdin),
  processSignal: call('processSignal', handleProcessSignal),
  processResize: call('processResize', handleProcessResize),
  processKill: call('processKill', handleProcessKill),
}

const BY_METHOD_AND_PATH = new Map(Object.entries(ROUTES).map(([name, route]) => [`${AgentRoutes[name as AgentRouteName].method} ${AgentRoutes[name as AgentRouteName].path}`, route]))

export function createAgentServer(ctx: AgentContext): http2.Http2Server {
  const server = http2.createServer({ settings: { initialWindowSize: HTTP2_WINDOW_BYTES, maxFrameSize: 256 * 1024 } })
  server.on('request', (req, res) => {
    const url = new URL(req.url, 'http://agent')
    const route = BY_METHOD_AND_PATH.get(`${req.method} ${url.pathname}`)
    if (!route) {
      sendError(res, new AgentFailure('invalid_request', `no route ${req.method} ${url.pathname}`, 404))
      return
    }
    route(ctx, req, res, url.searchParams).catch((e: unknown) => {
      if (!(e instanceof AgentFailure)) log.error(`${req.method} ${url.pathname}: ${(e as Error)?.stack ?? e}`)
      if (!res.closed) sendError(res, e)
      // Unread request bodies would otherwise hold flow-control window.
      req.resume()
    })
  })
  server.on('session', (session) => {
    // Larger connection window than the default 64 KiB: uploads stream through it.
    session.on('connect', () => session.setLocalWindowSize(16 * 1024 * 1024))
  })
  return server
}
