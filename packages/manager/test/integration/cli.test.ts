// The `sheesh` CLI and its MCP server against the shared manager and a real VM: the commands as a
// user types them (exit codes, --json, usage errors), and `sheesh mcp` driven by the MCP SDK's own
// client over stdio.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

const repo = path.resolve(import.meta.dirname, '../../../..')
const bin = path.join(repo, 'packages/cli/bin/sheesh.mjs')
let mgr: ManagerClient
let env: Record<string, string>
let vm: string
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-cli-'))

function sheesh(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, input, timeout: 180_000 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

beforeAll(async () => {
  mgr = await sharedManager()
  // As a user's shell would run it: none of the test runner's NODE_OPTIONS.
  const { NODE_OPTIONS: _, ...outer } = process.env as Record<string, string>
  env = { ...outer, RDS_BASE_URL: mgr.baseUrl, RDS_API_KEY: mgr.apiKey, XDG_CONFIG_HOME: tmp }
  const made = sheesh(['vm', 'create', '--mem', '512'])
  expect(made.code, `${made.out}\n${made.err}`).toBe(0)
  vm = made.out.trim()
})
afterAll(async () => {
  if (vm) await mgr.request('DELETE', `/v1/vms/${vm}`)
  fs.rmSync(tmp, { recursive: true, force: true })
})

describe('sheesh', () => {
  it('vm ls and get show the VM, as a table or JSON', () => {
    const ls = sheesh(['vm', 'ls'])
    expect(ls.out).toMatch(/^ID\s+STATE/)
    expect(ls.out).toContain(vm)
    expect(JSON.parse(sheesh(['vm', 'ls', '--json']).out).map((v: { id: string }) => v.id)).toContain(vm)
    expect(JSON.parse(sheesh(['vm', 'get', vm]).out)).toMatchObject({ id: vm, state: 'RUNNING', memMb: 512 })
  })

  it('exec passes output and the exit code through; several words are one quoted command', () => {
    const r = sheesh(['exec', vm, '--', 'echo out; echo err >&2; exit 7'])
    expect(r).toMatchObject({ code: 7, out: 'out\n', err: 'err\n' })
    expect(sheesh(['exec', vm, '--', 'printf', '%s|', 'a b', "it's", '$HOME']).out).toBe("a b|it's|$HOME|")
    expect(JSON.parse(sheesh(['exec', vm, '--json', '--', 'true']).out)).toMatchObject({ exitCode: 0 })
  })

  it('run-ts reads a file or stdin and prints the result', () => {
    fs.writeFileSync(path.join(tmp, 'job.ts'), 'console.log("hi"); result.set({ n: Deno.args.length })')
    expect(sheesh(['run-ts', vm, path.join(tmp, 'job.ts'), '--arg', 'x', '--arg', 'y'])).toMatchObject({ code: 0, out: 'hi\n{\n  "n": 2\n}\n' })
    expect(sheesh(['run-js', vm, '-'], 'result.set(6 * 7)').out).toBe('42\n')
  })

  it('cp copies a directory in and a file back out', () => {
    fs.mkdirSync(path.join(tmp, 'proj'))
    fs.writeFileSync(path.join(tmp, 'proj', 'a.txt'), 'copied in\n')
    expect(sheesh(['cp', path.join(tmp, 'proj'), `${vm}:/workspace/dst`]).code).toBe(0)
    expect(sheesh(['exec', vm, '--', 'cat /workspace/dst/proj/a.txt']).out).toBe('copied in\n')
    expect(sheesh(['cp', `${vm}:/workspace/dst/proj/a.txt`, path.join(tmp, 'back')]).code).toBe(0)
    expect(fs.readFileSync(path.join(tmp, 'back', 'a.txt'), 'utf8')).toBe('copied in\n')
  })

  it('snapshot prints an id; logs prints the console; image ls lists the default', async () => {
    const snap = sheesh(['snapshot', vm]).out.trim()
    expect(snap).toMatch(/^snap-[0-9a-f-]{36}$/)
    await mgr.request('DELETE', `/v1/snapshots/${snap}`)
    expect(sheesh(['logs', vm, '--tail', '5']).code).toBe(0)
    expect(sheesh(['image', 'ls']).out).toMatch(/\*/)
  })

  it('shell opens a terminal in the VM: input from a pipe, the shell\'s exit code as its own', () => {
    const r = sheesh(['shell', vm], 'tty; stty size; exit 4\n')
    expect(r.code, r.err).toBe(4)
    expect(r.out).toMatch(/\/dev\/pts\/\d+/)
    // Not a terminal here: the default size.
    expect(r.out).toContain('24 80')
    // A command instead of the login shell; the end of a piped input is the terminal's EOF.
    expect(sheesh(['shell', vm, '--', 'bash', '-c', 'read -r line; echo "got=$line"; exit 9'], 'hello\n')).toMatchObject({ code: 9, out: expect.stringContaining('got=hello') })
  })

  it('image build uploads this checkout\'s guest image; rm removes it; upload checks its files first', async () => {
    const built = sheesh(['image', 'build', '--name', 'cli-built', '--json'])
    expect(built.code, built.err).toBe(0)
    const img = JSON.parse(built.out)
    expect(img).toMatchObject({ name: 'cli-built', hasKernel: true, hasInitrd: true, hasRootfs: true, isDefault: false })
    // Its seed snapshot is built from it at once; an image in use cannot go, so wait for that.
    await expect.poll(async () => (await mgr.request('GET', '/v1/images')).body.find((i: { id: string }) => i.id === img.id)?.seedStatus, { timeout: 600_000, interval: 2_000 }).not.toBe('pending')
    expect(sheesh(['image', 'rm', img.id])).toMatchObject({ code: 0 })
    expect(JSON.parse(sheesh(['image', 'ls', '--json']).out).map((i: { id: string }) => i.id)).not.toContain(img.id)
    // A file that is not there: refused before anything is registered.
    expect(sheesh(['image', 'upload', 'broken', '--kernel', path.join(tmp, 'nope'), '--rootfs', path.join(tmp, 'nope')])).toMatchObject({ code: 2, err: expect.stringContaining('does not exist') })
  }, 900_000)

  it('says how it was misused (exit 2) and what the API refused (exit 1)', () => {
    expect(sheesh(['exec', vm])).toMatchObject({ code: 2, err: expect.stringContaining('usage: sheesh exec') })
    expect(sheesh(['vm', 'create', '--bogus'])).toMatchObject({ code: 2 })
    expect(sheesh(['exec', 'no-such-vm', '--', 'true'])).toMatchObject({ code: 1, err: expect.stringContaining('vm_not_found') })
    expect(sheesh(['vm', 'create', '--cpu', '99'])).toMatchObject({ code: 1, err: expect.stringContaining('Invalid cpu') })
    expect(sheesh(['--help']).code).toBe(0)
  })

  it('reads its settings from the config file when the environment has none', () => {
    fs.mkdirSync(path.join(tmp, 'sheesh'), { recursive: true })
    fs.writeFileSync(path.join(tmp, 'sheesh', 'config.json'), JSON.stringify({ baseUrl: mgr.baseUrl, apiKey: mgr.apiKey }))
    const saved = env
    env = { ...saved, RDS_BASE_URL: '', RDS_API_KEY: '' }
    try {
      expect(sheesh(['vm', 'get', vm]).code).toBe(0)
    } finally {
      env = saved
    }
  })
})

describe('sheesh mcp', () => {
  let client: Client
  beforeAll(async () => {
    client = new Client({ name: 'rds-test', version: '1.0.0' })
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [bin, 'mcp'], env: { ...env } }))
  })
  afterAll(() => client?.close())

  it('lists its tools with schemas and descriptions', async () => {
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name).sort()).toEqual(['create_sandbox', 'delete_sandbox', 'exec', 'list_files', 'list_sandboxes', 'read_file', 'run_js', 'run_ts', 'snapshot', 'write_file'])
    const exec = tools.find((t) => t.name === 'exec')!
    expect(exec.description).toContain('shell command')
    expect(exec.inputSchema.required).toEqual(expect.arrayContaining(['sandboxId', 'cmd']))
  })

  it('runs commands and code, writes, reads and lists files in a sandbox', async () => {
    const call = async (name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as { content: { text: string }[]; structuredContent?: any; isError?: boolean }
    const ran = await call('exec', { sandboxId: vm, cmd: 'echo from-mcp; exit 3' })
    expect(ran.structuredContent).toMatchObject({ exitCode: 3, stdout: 'from-mcp\n' })
    expect(ran.content[0]!.text).toContain('exit code 3')
    expect((await call('run_ts', { sandboxId: vm, code: 'result.set({ ok: true })' })).structuredContent.result).toEqual({ ok: true })
    const content = "line one\nit's $HOME `x`\n"
    expect((await call('write_file', { sandboxId: vm, path: '/workspace/mcp/notes.txt', content })).isError).toBeFalsy()
    expect((await call('read_file', { sandboxId: vm, path: '/workspace/mcp/notes.txt' })).structuredContent.content).toBe(content)
    expect((await call('list_files', { sandboxId: vm, path: '/workspace/mcp' })).structuredContent.entries).toEqual([{ name: 'notes.txt', type: 'file', size: Buffer.byteLength(content) }])
    expect((await call('list_sandboxes', {})).structuredContent.sandboxes.map((s: { sandboxId: string }) => s.sandboxId)).toContain(vm)
  })

  it('returns API errors as tool errors with the API\'s sentence', async () => {
    const r = (await client.callTool({ name: 'exec', arguments: { sandboxId: vm, cmd: 'true', cwd: '/etc' } })) as { isError?: boolean; content: { text: string }[] }
    expect(r.isError).toBe(true)
    expect(r.content[0]!.text).toContain('path_not_allowed')
  })

  it('creates and deletes a sandbox', async () => {
    const made = (await client.callTool({ name: 'create_sandbox', arguments: { memMb: 512 } })) as unknown as { structuredContent: { sandboxId: string } }
    const id = made.structuredContent.sandboxId
    expect((await mgr.request('GET', `/v1/vms/${id}`)).body.state).toBe('RUNNING')
    await client.callTool({ name: 'delete_sandbox', arguments: { sandboxId: id } })
    expect((await mgr.request('GET', `/v1/vms/${id}`)).status).toBe(404)
  })
})

describe('sheesh mcp --http', () => {
  let proc: ReturnType<typeof spawn>
  let url: string
  beforeAll(async () => {
    proc = spawn(process.execPath, [bin, 'mcp', '--http', '--port', '0', '--token', 'test-token'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    url = await new Promise<string>((resolve, reject) => {
      let err = ''
      proc.stderr!.on('data', (d: Buffer) => {
        err += d
        const m = /at (http:\/\/\S+)/.exec(err)
        if (m) resolve(m[1]!)
      })
      proc.once('exit', (code) => reject(new Error(`sheesh mcp --http exited (${code}): ${err}`)))
    })
  })
  afterAll(() => proc?.kill())

  it('serves the same tools over streamable HTTP to a client with the token', async () => {
    const client = new Client({ name: 'rds-test-http', version: '1.0.0' })
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: 'Bearer test-token' } } }))
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('exec')
      const ran = (await client.callTool({ name: 'exec', arguments: { sandboxId: vm, cmd: 'echo over-http' } })) as unknown as { structuredContent: { stdout: string } }
      expect(ran.structuredContent.stdout).toBe('over-http\n')
    } finally {
      await client.close()
    }
  })

  it('refuses a request without the token, and a Host that is not loopback', async () => {
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
    expect((await fetch(url, { method: 'POST', headers, body: JSON.stringify(init) })).status).toBe(401)
    expect((await fetch(url, { method: 'POST', headers: { ...headers, authorization: 'Bearer wrong-token' }, body: JSON.stringify(init) })).status).toBe(401)
    const rebound = await new Promise<number>((resolve, reject) => {
      const u = new URL(url)
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { ...headers, host: 'evil.example:80', authorization: 'Bearer test-token' } }, (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
      req.on('error', reject)
      req.end(JSON.stringify(init))
    })
    expect(rebound).toBe(403)
  })
})
