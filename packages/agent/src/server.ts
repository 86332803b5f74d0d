import http2 from 'node:http2'
import { AgentPaths } from '@rds/protocol'
import { HTTP2_WINDOW_BYTES } from './config.ts'
import type { AgentContext } from './context.ts'
import { AgentFailure } from './errors.ts'
import { handleExec } from './handlers/exec.ts'
import { handleDownload, handleUpload } from './handlers/files.ts'
import { handleHealth } from './handlers/health.ts'
import { handleInit } from './handlers/init.ts'
import { handleRun } from './handlers/run.ts'
import { requestShutdown } from './handlers/shutdown.ts'
import { handlePeersInstall } from './peers/install.ts'
import { readJson, sendError, sendJson } from './http/respond.ts'
import { log } from './log.ts'

type Route = (ctx: AgentContext, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, query: URLSearchParams) => Promise<void>

const json =
  (fn: (ctx: AgentContext, body: unknown) => Promise<unknown>, status = 200): Route =>
  async (ctx, req, res) => {
    const out = await fn(ctx, await readJson(req))
    if (out === undefined) {
      res.writeHead(status === 200 ? 204 : status)
      res.end()
    } else sendJson(res, status, out)
  }

const ROUTES: Record<string, Route> = {
  [`GET ${AgentPaths.health}`]: async (ctx, _req, res) => sendJson(res, 200, handleHealth(ctx)),
  [`POST ${AgentPaths.init}`]: json(handleInit),
  [`POST ${AgentPaths.exec}`]: json(handleExec),
  [`POST ${AgentPaths.run}`]: json(handleRun),
  [`POST ${AgentPaths.upload}`]: async (ctx, req, res, q) => {
    await handleUpload(ctx, req, q)
    res.writeHead(204)
    res.end()
  },
  [`GET ${AgentPaths.download}`]: (ctx, _req, res, q) => handleDownload(ctx, res, q),
  [`POST ${AgentPaths.peersInstall}`]: async (ctx, req, res) => {
    await handlePeersInstall(ctx, req)
    res.writeHead(204)
    res.end()
  },
  [`POST ${AgentPaths.shutdown}`]: async (_ctx, _req, res) => {
    res.writeHead(202)
    res.end(() => setTimeout(requestShutdown, 10))
  },
}

export function createAgentServer(ctx: AgentContext): http2.Http2Server {
  const server = http2.createServer({ settings: { initialWindowSize: HTTP2_WINDOW_BYTES } })
  server.on('request', (req, res) => {
    const url = new URL(req.url, 'http://agent')
    const route = ROUTES[`${req.method} ${url.pathname}`]
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
