// The TypeScript SDK against the shared manager and real VMs: the surface of Sandbox, its typed
// errors, configuration from the environment, async dispose, and the built package as ESM, CJS
// and under Deno.
import { execFileSync, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RdsApiError, RdsConnectionError, Sandbox } from '../../../sdk/src/index.ts'
import { tarGz } from '../harness/archives.ts'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

const repo = path.resolve(import.meta.dirname, '../../../..')
let mgr: ManagerClient
let opts: { baseUrl: string; apiKey: string }
let sb: Sandbox

beforeAll(async () => {
  mgr = await sharedManager()
  opts = { baseUrl: mgr.baseUrl, apiKey: mgr.apiKey }
  // The template shape of the shared manager: a resume from its seed.
  sb = await Sandbox.create({ ...opts, memMb: 512 })
})
afterAll(async () => {
  await sb?.delete().catch(() => {})
})

describe('Sandbox', () => {
  it('creates a running VM and finds it again by id and in the list', async () => {
    expect(sb.info).toMatchObject({ state: 'RUNNING', cpu: 1, memMb: 512, createdBy: 'env:API_KEY' })
    expect((await Sandbox.connect(sb.id, opts)).info.id).toBe(sb.id)
    expect((await Sandbox.list(opts)).map((v) => v.id)).toContain(sb.id)
  })

  it('exec returns the exit code and output; cwd and env apply', async () => {
    await sb.exec('mkdir -p /workspace/sub')
    expect(await sb.exec('echo "$GREETING from $(pwd)"; exit 3', { cwd: '/workspace/sub', env: { GREETING: 'hi' } })).toMatchObject({ exitCode: 3, stdout: 'hi from /workspace/sub\n', timedOut: false })
  })

  it('streams a command\'s output as it happens when asked, and still returns all of it', async () => {
    const seen: { text: string; at: number }[] = []
    const r = await sb.exec('echo first; sleep 2; echo second >&2; exit 5', { onStdout: (text) => seen.push({ text, at: Date.now() }), onStderr: (text) => seen.push({ text: `err:${text}`, at: Date.now() }) })
    expect(r).toMatchObject({ exitCode: 5, stdout: 'first\n', stderr: 'second\n' })
    expect(seen.map((s) => s.text)).toEqual(['first\n', 'err:second\n'])
    // The first line came during the command's sleep, not with its end.
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThan(1000)
  })

  it('opens an interactive terminal: a real tty of the asked size, input, resize, exit code; attach again later', async () => {
    const chunks: Uint8Array[] = []
    const screen = () => new TextDecoder().decode(Buffer.concat(chunks))
    const term = await sb.pty.create({ cols: 100, rows: 30, onData: (b) => chunks.push(b) })
    term.send('tty -s && echo "tty=yes size=$(stty size)"\n')
    await expect.poll(screen, { timeout: 30_000 }).toContain('tty=yes size=30 100')
    term.resize(120, 40)
    // stty reads the size back from the kernel: the resize reached the terminal in the VM.
    await expect.poll(async () => {
      term.send('echo "now=$(stty size)"\n')
      await new Promise((r) => setTimeout(r, 500))
      return screen()
    }, { timeout: 30_000 }).toContain('now=40 120')
    // Detaching leaves it running; a second attach replays what it printed and carries on.
    term.close()
    const again: Uint8Array[] = []
    const second = await sb.processes.attach(term.pid, { onData: (b) => again.push(b) })
    await expect.poll(() => new TextDecoder().decode(Buffer.concat(again)), { timeout: 30_000 }).toContain('tty=yes')
    second.send('exit 7\n')
    expect(await second.exited).toEqual({ exitCode: 7 })
    // A process that is gone: the attach is refused with the API's code.
    await expect(sb.processes.attach(999_999)).rejects.toMatchObject({ code: 'process_not_found' })
  })

  it('runs a background process: stdin, output followed from an offset, kill', async () => {
    const p = await sb.processes.start({ cmd: 'while read -r l; do echo "got:$l"; done', stdin: true, tag: 'sdk' })
    expect(p).toMatchObject({ state: 'running', tag: 'sdk', stdin: true })
    expect((await sb.processes.list()).map((x) => x.pid)).toContain(p.pid)
    await sb.processes.sendStdin(p.pid, 'one\ntwo\n')
    const lines: string[] = []
    for await (const e of sb.processes.output(p.pid, { follow: true })) {
      if (e.type === 'stdout') lines.push(e.data ?? '')
      if (lines.join('').includes('got:two')) break
    }
    expect(lines.join('')).toBe('got:one\ngot:two\n')
    // From an offset: only what came after it.
    const after: string[] = []
    for await (const e of sb.processes.output(p.pid, { since: 'got:one\n'.length })) if (e.type === 'stdout') after.push(e.data ?? '')
    expect(after.join('')).toBe('got:two\n')
    await sb.processes.sendStdin(p.pid, '', { eof: true })
    await expect.poll(async () => (await sb.processes.get(p.pid)).state, { timeout: 30_000 }).toBe('exited')
    const long = await sb.processes.start({ args: ['sleep', '300'] })
    await sb.processes.kill(long.pid)
    await expect.poll(async () => (await sb.processes.get(long.pid)).state, { timeout: 30_000 }).toBe('exited')
  })

  it('runTs and runJs return result.set values, inline or from a file', async () => {
    expect((await sb.runTs('const n: number = 21; result.set({ n: n * 2 })')).result).toEqual({ n: 42 })
    expect((await sb.runJs('result.set([process.argv.length > 0, 7])')).result).toEqual([true, 7])
    await sb.exec('echo "result.set(Deno.args)" > /workspace/args.ts')
    expect((await sb.runTs({ path: '/workspace/args.ts' }, { args: ['a', 'b c'] })).result).toEqual(['a', 'b c'])
  })

  it('moves files in and out as tar.gz', async () => {
    await sb.files.upload(tarGz({ 'in/hello.txt': 'from the sdk\n' }), '/workspace/up')
    expect((await sb.exec('cat /workspace/up/in/hello.txt')).stdout).toBe('from the sdk\n')
    const archive = gunzipSync(await sb.files.downloadBytes('/workspace/up/in/hello.txt'))
    expect(archive.includes(Buffer.from('from the sdk'))).toBe(true)
  })

  it('uploads a local directory and downloads a path into one (Node: the system tar)', async () => {
    const local = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-sdk-dir-'))
    try {
      fs.mkdirSync(path.join(local, 'src/deep'), { recursive: true })
      fs.writeFileSync(path.join(local, 'src/deep/a.txt'), 'local file\n')
      await sb.files.upload(path.join(local, 'src'), '/workspace/from-dir')
      expect((await sb.exec('cat /workspace/from-dir/deep/a.txt')).stdout).toBe('local file\n')
      await sb.files.download('/workspace/from-dir', path.join(local, 'back'))
      expect(fs.readFileSync(path.join(local, 'back/deep/a.txt'), 'utf8')).toBe('local file\n')
      // A file arrives under its own name.
      await sb.files.download('/workspace/from-dir/deep/a.txt', path.join(local, 'one'))
      expect(fs.readdirSync(path.join(local, 'one'))).toEqual(['a.txt'])
      await expect(sb.files.upload(path.join(local, 'missing'))).rejects.toThrow(/is not a directory/)
    } finally {
      fs.rmSync(local, { recursive: true, force: true })
    }
  })

  it('reads, writes, lists, moves and deletes single files, and watches a directory', async () => {
    await sb.files.write('/workspace/f/hello.txt', 'héllo\n')
    expect(await sb.files.read('/workspace/f/hello.txt')).toBe('héllo\n')
    const bytes = new Uint8Array([0, 255, 1, 254])
    await sb.files.write('/workspace/f/bin.dat', bytes, { mode: '600' })
    expect(await sb.files.read('/workspace/f/bin.dat', { format: 'bytes' })).toEqual(bytes)
    expect(await sb.files.stat('/workspace/f/bin.dat')).toMatchObject({ type: 'file', size: 4, mode: '600' })
    expect((await sb.files.list('/workspace/f')).map((e) => e.name)).toEqual(['bin.dat', 'hello.txt'])
    await sb.files.mkdir('/workspace/f/sub')
    await sb.files.move('/workspace/f/hello.txt', '/workspace/f/sub/moved.txt')
    expect((await sb.files.glob('/workspace/f/**/*.txt')).map((e) => e.path)).toEqual(['/workspace/f/sub/moved.txt'])
    await expect(sb.files.remove('/workspace/f/sub')).rejects.toMatchObject({ status: 409, code: 'directory_not_empty' })
    await sb.files.remove('/workspace/f/sub', { recursive: true })
    await expect(sb.files.read('/workspace/f/sub/moved.txt')).rejects.toMatchObject({ status: 404 })

    const seen: string[] = []
    const watch = await sb.files.watch('/workspace/f', (e) => seen.push(`${e.type} ${e.path}`))
    await sb.exec('echo x > /workspace/f/new.txt')
    await expect.poll(() => seen.some((s) => s.startsWith('create /workspace/f/new.txt')), { timeout: 30_000 }).toBe(true)
    watch.stop()
    await watch.done
  })

  it('reads and changes the network policy', async () => {
    expect((await sb.network.get()).effective.egress).toBe('none')
    const changed = await sb.network.update({ allowIps: ['203.0.113.9'] })
    expect(changed).toMatchObject({ allowIps: ['203.0.113.9'], effective: { egress: 'list' } })
    await sb.network.update({ allowIps: [] })
  })

  it('pauses and resumes; snapshots, and a sandbox made from the snapshot has the files', async () => {
    await sb.pause()
    expect((await sb.refresh()).state).toBe('PAUSED')
    await sb.resume()
    await sb.exec('echo kept > /workspace/kept.txt')
    const snap = await sb.snapshot()
    let cloneId = ''
    expect(snap).toMatchObject({ kind: 'user_overlay', sourceVmId: sb.id, createdBy: 'env:API_KEY' })
    {
      await using clone = await Sandbox.create({ ...opts, memMb: 512, snapshotId: snap.id })
      expect((await clone.exec('cat /workspace/kept.txt')).stdout).toBe('kept\n')
      cloneId = clone.id
    }
    // `await using` deleted it at the end of the block.
    await expect(Sandbox.connect(cloneId, opts)).rejects.toMatchObject({ status: 404, code: 'vm_not_found' })
    await mgr.request('DELETE', `/v1/snapshots/${snap.id}`)
  })

  it('surfaces API errors as RdsApiError with code, status and sentence', async () => {
    const err = await sb.exec('true', { cwd: '/etc' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RdsApiError)
    expect(err).toMatchObject({ status: 400, code: 'path_not_allowed', message: expect.stringContaining('/workspace') })
    await expect(Sandbox.create({ ...opts, cpu: 99 })).rejects.toMatchObject({ code: 'invalid_cpu', status: 400 })
    await expect(Sandbox.list({ ...opts, apiKey: 'wrong-key-wrong-key' })).rejects.toMatchObject({ code: 'unauthorized', status: 401 })
    await expect(Sandbox.list({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k', retries: 1 })).rejects.toBeInstanceOf(RdsConnectionError)
  })

  it('cancels with an AbortSignal', async () => {
    const ac = new AbortController()
    const pending = sb.exec('sleep 20', { signal: ac.signal })
    setTimeout(() => ac.abort(new Error('changed my mind')), 300)
    await expect(pending).rejects.toThrow('changed my mind')
  })

  it('reads RDS_BASE_URL and RDS_API_KEY when not given', async () => {
    const saved = { url: process.env.RDS_BASE_URL, key: process.env.RDS_API_KEY }
    process.env.RDS_BASE_URL = opts.baseUrl
    process.env.RDS_API_KEY = opts.apiKey
    try {
      expect((await Sandbox.list()).map((v) => v.id)).toContain(sb.id)
    } finally {
      process.env.RDS_BASE_URL = saved.url
      process.env.RDS_API_KEY = saved.key
    }
  })
})

describe('the built package', () => {
  // tsc keeps a compile cache in TMPDIR unless told not to; the leak check would find it.
  beforeAll(() => execFileSync(process.execPath, [path.join(repo, 'packages/sdk/build.ts')], { stdio: 'pipe', env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } }))

  it('loads as ESM and as CommonJS and works', async () => {
    const esm = await import(path.join(repo, 'packages/sdk/dist/index.mjs'))
    const cjs = createRequire(import.meta.url)(path.join(repo, 'packages/sdk/dist/index.cjs'))
    for (const m of [esm, cjs]) expect((await m.Sandbox.connect(sb.id, opts)).info.state).toBe('RUNNING')
  })

  it('works under Deno', () => {
    const deno = path.join(repo, 'node_modules/@deno/linux-x64-glibc/deno')
    const script = `import { Sandbox } from '${path.join(repo, 'packages/sdk/dist/index.mjs')}'
const sb = await Sandbox.connect(Deno.env.get('SB')!)
console.log(JSON.stringify(await sb.exec('echo deno-ok')))`
    const r = spawnSync(deno, ['eval', '--ext=ts', script], { encoding: 'utf8', env: { ...process.env, SB: sb.id, RDS_BASE_URL: opts.baseUrl, RDS_API_KEY: opts.apiKey, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' } })
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 0, stdout: 'deno-ok\n' })
  })

  it('works under Bun: exec, a local directory up and back down (its system tar), a terminal over its WebSocket', () => {
    const bun = path.join(repo, 'node_modules/@oven/bun-linux-x64/bin/bun')
    const local = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-bun-'))
    fs.mkdirSync(path.join(local, 'src'))
    fs.writeFileSync(path.join(local, 'src/b.txt'), 'from bun\n')
    const script = `import { Sandbox } from '${path.join(repo, 'packages/sdk/dist/index.mjs')}'
const sb = await Sandbox.connect(process.env.SB)
const exec = await sb.exec('echo bun-ok')
await sb.files.upload(process.env.LOCAL + '/src', '/workspace/from-bun')
await sb.files.download('/workspace/from-bun', process.env.LOCAL + '/back')
let screen = ''
const term = await sb.pty.create({ cols: 90, rows: 20, onData: (b) => (screen += new TextDecoder().decode(b)) })
term.send('echo "size=$(stty size)"; exit 3\\n')
const code = await term.exited
console.log(JSON.stringify({ exec, back: await Bun.file(process.env.LOCAL + '/back/b.txt').text(), screen, code }))`
    try {
      const r = spawnSync(bun, ['-e', script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, SB: sb.id, LOCAL: local, RDS_BASE_URL: opts.baseUrl, RDS_API_KEY: opts.apiKey, NO_COLOR: '1', BUN_INSTALL_CACHE_DIR: path.join(local, 'cache') } })
      expect(r.stderr).toBe('')
      const out = JSON.parse(r.stdout)
      expect(out.exec).toMatchObject({ exitCode: 0, stdout: 'bun-ok\n' })
      expect(out.back).toBe('from bun\n')
      expect(out.screen).toContain('size=20 90')
      expect(out.code).toEqual({ exitCode: 3 })
    } finally {
      fs.rmSync(local, { recursive: true, force: true })
    }
  })
})
