// `sheesh mcp --http`: the same tools over MCP's streamable HTTP transport, stateless (a fresh
// server and transport per request, as the MCP SDK recommends when no session state is kept).
// This front door holds an API key, so whoever reaches it controls sandboxes: it listens on
// loopback unless told otherwise, every request needs the bearer token, and on loopback the Host
// header must name loopback (a web page cannot rebind a DNS name onto it).
import crypto from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'

export interface McpHttpOptions {
  host: string
  port: number
  /** The bearer token clients must send. */
  token: string
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])
const hostName = (header: string) => header.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase()

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '')
  const want = Buffer.from(token)
  return given.length === want.length && crypto.timingSafeEqual(given, want)
}

function refuse(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message }, id: null }))
}

/** Serves until the process ends; resolves with the URL once listening. */
export async function serveMcpHttp(makeServer: () => McpServer, o: McpHttpOptions): Promise<{ url: string; server: http.Server }> {
  const loopbackOnly = LOOPBACK.has(o.host)
  const server = http.createServer(async (req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/mcp') return refuse(res, 404, 'the MCP endpoint is /mcp')
    if (loopbackOnly && !LOOPBACK.has(hostName(req.headers.host ?? ''))) return refuse(res, 403, 'this server answers only to a loopback Host')
    if (!tokenMatches(req.headers.authorization, o.token)) return refuse(res, 401, 'a valid bearer token is required (Authorization: Bearer <token>)')
    const mcp = makeServer()
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
    res.on('close', () => {
      void transport.close()
      void mcp.close()
    })
    try {
      await mcp.connect(transport)
      await transport.handleRequest(req, res)
    } catch (err) {
      if (!res.headersSent) refuse(res, 500, (err as Error).message)
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(o.port, o.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const shown = o.host.includes(':') ? `[${o.host}]` : o.host
  return { url: `http://${shown}:${port}/mcp`, server }
}
