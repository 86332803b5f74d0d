// sheesh mcp: a Model Context Protocol server over stdio or streamable HTTP (the official MCP TypeScript SDK) whose
// tools let an agent create sandboxes, run commands and code in them, and read and write files. Results
// are text for the model plus structured content; API errors come back as tool errors carrying
// the API's sentence and code, so the model can correct its call.
import crypto from 'node:crypto'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { RdsApiError, Sandbox, type ClientOptions } from '@run-dat-sheesh/sdk/source'
import * as z from 'zod'
import { UsageError, type Command } from '../command.ts'
import { serveMcpHttp } from '../mcp-http.ts'

const sandboxId = z.string().describe('The sandbox id, as create_sandbox answered it.')

type ToolResult = { content: { type: 'text'; text: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean }

/** Runs a tool's work; an API error is a tool error with the API's own sentence. */
async function tool(work: () => Promise<{ text: string; data: Record<string, unknown> }>): Promise<ToolResult> {
  try {
    const { text, data } = await work()
    return { content: [{ type: 'text', text }], structuredContent: data }
  } catch (e) {
    const message = e instanceof RdsApiError ? `${e.message} (${e.code}, HTTP ${e.status})` : (e as Error).message
    return { content: [{ type: 'text', text: message }], isError: true }
  }
}

const runText = (r: { exitCode: number; stdout: string; stderr: string; result?: unknown; error?: unknown }) =>
  [`exit code ${r.exitCode}`, r.stdout && `stdout:\n${r.stdout}`, r.stderr && `stderr:\n${r.stderr}`, r.result !== undefined && `result: ${JSON.stringify(r.result)}`, r.error !== undefined && `error: ${JSON.stringify(r.error)}`].filter(Boolean).join('\n')

export function mcpServer(client: ClientOptions): McpServer {
  const server = new McpServer({ name: 'run-dat-sheesh', version: '0.1.0' })
  const connect = (id: string) => Sandbox.connect(id, client)

  server.registerTool(
    'create_sandbox',
    {
      description: 'Create a new isolated Linux sandbox (a real microVM) to run untrusted code in. It starts with no network access unless allowIps or outboundInternet say otherwise. Returns sandboxId for the other tools. Delete it with delete_sandbox when done.',
      inputSchema: {
        cpu: z.number().int().min(1).optional().describe('vCPUs, default 1.'),
        memMb: z.number().int().min(128).optional().describe('Memory in MiB, default 256.'),
        allowIps: z.array(z.string()).optional().describe('IPv4 addresses or CIDRs the sandbox may reach.'),
        outboundInternet: z.boolean().optional().describe('Allow any internet destination (and DNS).'),
        snapshotId: z.string().optional().describe('Start from this snapshot (files and running processes included).'),
      },
    },
    (a) =>
      tool(async () => {
        const sb = await Sandbox.create({ ...client, ...a })
        return { text: `Created sandbox ${sb.id} (${sb.info.cpu} vCPU, ${sb.info.memMb} MiB, ${sb.info.state}).`, data: { sandboxId: sb.id, state: sb.info.state } }
      }),
  )

  server.registerTool('list_sandboxes', { description: 'List the sandboxes that exist, with their state.', inputSchema: {} }, () =>
    tool(async () => {
      const list = await Sandbox.list(client)
      const sandboxes = list.map((v) => ({ sandboxId: v.id, state: v.state, cpu: v.cpu, memMb: v.memMb, createdAt: v.createdAt }))
      return { text: list.length ? sandboxes.map((s) => `${s.sandboxId} ${s.state} ${s.cpu} vCPU ${s.memMb} MiB`).join('\n') : 'No sandboxes.', data: { sandboxes } }
    }),
  )

  server.registerTool(
    'exec',
    {
      description: 'Run a shell command (bash) in a sandbox as an unprivileged user, in /workspace unless cwd is given (it must be under /workspace). Returns exit code, stdout and stderr.',
      inputSchema: { sandboxId, cmd: z.string().min(1).describe('The shell command line.'), cwd: z.string().optional(), env: z.record(z.string(), z.string()).optional(), timeoutMs: z.number().int().min(1).optional() },
    },
    (a) =>
      tool(async () => {
        const r = await (await connect(a.sandboxId)).exec(a.cmd, { ...(a.cwd ? { cwd: a.cwd } : {}), ...(a.env ? { env: a.env } : {}), ...(a.timeoutMs ? { timeoutMs: a.timeoutMs } : {}) })
        return { text: runText(r), data: { ...r } }
      }),
  )

  for (const [name, lang] of [['run_ts', 'TypeScript (Deno)'], ['run_js', 'JavaScript (Node)']] as const) {
    server.registerTool(
      name,
      {
        description: `Run ${lang} code in a sandbox. Call result.set(value) in the code to return a JSON value; console output is returned too.`,
        inputSchema: { sandboxId, code: z.string().min(1).describe(`${lang} module source.`) },
      },
      (a) =>
        tool(async () => {
          const sb = await connect(a.sandboxId)
          const r = name === 'run_ts' ? await sb.runTs(a.code) : await sb.runJs(a.code)
          return { text: runText(r), data: { ...r } }
        }),
    )
  }

  server.registerTool(
    'write_file',
    { description: 'Write a text file in a sandbox (under /workspace; parent directories are made, an existing file is replaced).', inputSchema: { sandboxId, path: z.string().describe('e.g. /workspace/app/main.py'), content: z.string() } },
    (a) =>
      tool(async () => {
        await (await connect(a.sandboxId)).files.write(a.path, a.content)
        return { text: `Wrote ${Buffer.byteLength(a.content)} bytes to ${a.path}.`, data: { path: a.path, bytes: Buffer.byteLength(a.content) } }
      }),
  )

  server.registerTool('read_file', { description: 'Read a text file from a sandbox (UTF-8).', inputSchema: { sandboxId, path: z.string() } }, (a) =>
    tool(async () => {
      const content = await (await connect(a.sandboxId)).files.read(a.path)
      return { text: content, data: { path: a.path, content } }
    }),
  )

  server.registerTool('list_files', { description: 'List a directory in a sandbox (name, type, size).', inputSchema: { sandboxId, path: z.string().default('/workspace') } }, (a) =>
    tool(async () => {
      const entries = (await (await connect(a.sandboxId)).files.list(a.path)).map((e) => ({ name: e.name, type: e.type, size: e.size }))
      return { text: entries.map((e) => `${e.type === 'dir' ? `${e.name}/` : e.name}\t${e.size}`).join('\n') || '(empty)', data: { path: a.path, entries } }
    }),
  )

  server.registerTool('snapshot', { description: 'Snapshot a sandbox (files, memory and running processes); create_sandbox with snapshotId starts a copy.', inputSchema: { sandboxId } }, (a) =>
    tool(async () => {
      const snap = await (await connect(a.sandboxId)).snapshot()
      return { text: `Snapshot ${snap.id} taken.`, data: { snapshotId: snap.id } }
    }),
  )

  server.registerTool('delete_sandbox', { description: 'Delete a sandbox and everything in it.', inputSchema: { sandboxId } }, (a) =>
    tool(async () => {
      await (await connect(a.sandboxId)).delete()
      return { text: `Deleted sandbox ${a.sandboxId}.`, data: { sandboxId: a.sandboxId, deleted: true } }
    }),
  )
  return server
}

export const mcp: Command = {
  name: 'mcp',
  usage: 'sheesh mcp                (stdio)\n       sheesh mcp --http [--host 127.0.0.1] [--port 8808] [--token TOKEN]   (streamable HTTP at /mcp; token also from SHEESH_MCP_TOKEN, else one is made and printed)',
  summary: 'Serve the Model Context Protocol for an agent (stdio, or streamable HTTP)',
  options: { http: { type: 'boolean' }, host: { type: 'string' }, port: { type: 'string' }, token: { type: 'string' } },
  async run(_args, values, client) {
    if (!values.http) return void (await mcpServer(client).connect(new StdioServerTransport()))
    const given = (values.token as string | undefined) || process.env.SHEESH_MCP_TOKEN
    const token = given || crypto.randomBytes(24).toString('base64url')
    const port = values.port === undefined ? 8808 : Number(values.port)
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be a port number (0 picks a free one)')
    const { url } = await serveMcpHttp(() => mcpServer(client), { host: (values.host as string | undefined) ?? '127.0.0.1', port, token })
    process.stderr.write(`MCP server (streamable HTTP) at ${url}\n${given ? '' : `bearer token: ${token}\n`}`)
    // Serves until interrupted.
    await new Promise(() => {})
  },
}
