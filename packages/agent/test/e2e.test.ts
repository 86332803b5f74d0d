// Starts the real agent on the host in test mode (Unix socket instead of the virtio port, temp
// dirs instead of /workspace etc.) and drives it over HTTP/2 after the resync handshake. Needs
// root (uid 1000 must be reachable by setuid) and gcc for a host build of guest/init/rds-exec.c.
import fs from 'node:fs'
import type http2 from 'node:http2'
import path from 'node:path'
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import tar from 'tar-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_PROTOCOL_VERSION } from '@rds/protocol'
import { connectAgent, json, request } from './helpers/agent-client.ts'
import { canRunHostAgent as canRun, startHostAgent, type HostAgent } from './helpers/host-agent.ts'


let host: HostAgent
let root: string
let ws: string
let sock: string
let cgroupRoot: string
let session: http2.ClientHttp2Session

async function until(what: string, cond: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`gave up waiting for ${what}\nagent log:\n${host?.log()}`)
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function tgz(entries: (Partial<tar.Header> & { name: string; body?: string })[]): Promise<Buffer> {
  const pack = tar.pack()
  for (const { body, ...h } of entries) pack.entry(h, body ?? '')
  pack.finalize()
  const chunks: Buffer[] = []
  for await (const c of pack.pipe(zlib.createGzip())) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

async function plainTar(entries: (Partial<tar.Header> & { name: string; body?: string })[]): Promise<Buffer> {
  return zlib.gunzipSync(await tgz(entries))
}

const untar = (buf: Buffer) => untgz(buf, false)

async function untgz(buf: Buffer, gzip = true): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const ex = tar.extract()
  if (gzip) Readable.from([buf]).pipe(zlib.createGunzip()).pipe(ex)
  else Readable.from([buf]).pipe(ex)
  for await (const e of ex) {
    const chunks: Buffer[] = []
    for await (const c of e) chunks.push(c as Buffer)
    out.set(e.header.name, Buffer.concat(chunks).toString())
  }
  return out
}

describe.skipIf(!canRun)('agent end to end (host, test mode)', () => {
  beforeAll(async () => {
    host = await startHostAgent({ prefix: 'rds-agent-e2e-', cgroups: true, deno: true })
    ;({ root, ws, sock, cgroupRoot, session } = host)
  }, 60_000)

  afterAll(() => host?.stop(), 60_000)

  it('answers health', async () => {
    const r = await json(session, 'GET', '/health')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ status: 'ok', protocolVersion: AGENT_PROTOCOL_VERSION })
  })

  it('accepts init (clock and entropy are best-effort) and states who answers', async () => {
    const r = await json(session, 'POST', '/init', { unixTimeMs: Date.now(), entropy: Buffer.alloc(32, 7).toString('base64') })
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ agentVersion: expect.any(String), protocolVersion: AGENT_PROTOCOL_VERSION })
  })

  it('starts user processes without address-space randomisation only while the host asks so at init', async () => {
    const init = (extra: object) => json(session, 'POST', '/init', { unixTimeMs: Date.now(), entropy: '', ...extra })
    // ADDR_NO_RANDOMIZE is 0x0040000 in the personality word.
    const personality = async () => (await json(session, 'POST', '/exec', { cmd: 'cat /proc/self/personality' })).body.stdout.trim()
    const runPersonality = async () => (await json(session, 'POST', '/run', { runtime: 'node', code: "result.set(require('node:fs').readFileSync('/proc/self/personality', 'utf8').trim())" })).body.result
    expect(await personality()).toBe('00000000')
    try {
      expect((await init({ userAslr: false })).status).toBe(200)
      expect(await personality()).toBe('00040000')
      // The first run starts its runtime cold, the second takes the warm one started after it.
      expect(await runPersonality()).toBe('00040000')
      expect(await runPersonality()).toBe('00040000')
    } finally {
      expect((await init({})).status).toBe(200)
    }
    expect(await personality()).toBe('00000000')
    // The runtime left warm under the old policy was discarded at /init.
    expect(await runPersonality()).toBe('00000000')
    expect(await runPersonality()).toBe('00000000')
  })

  it('runs commands as uid/gid 1000 with no supplementary groups, in the workspace, with the base env', async () => {
    const r = await json(session, 'POST', '/exec', { cmd: 'id -u; id -g; id -G; pwd; echo "$HOME $USER $TERM $FOO"', env: { FOO: 'bar', TERM: 'xterm' } })
    expect(r.status).toBe(200)
    expect(r.body.stdout).toBe(`1000\n1000\n1000\n${ws}\n${ws} user xterm bar\n`)
    expect(r.body).toMatchObject({ exitCode: 0, timedOut: false, stdoutTruncated: false })
  })

  it('reports exit codes, signals and truncation', async () => {
    expect((await json(session, 'POST', '/exec', { cmd: 'exit 3' })).body.exitCode).toBe(3)
    expect((await json(session, 'POST', '/exec', { cmd: 'kill -9 $$' })).body.exitCode).toBe(137)
    const t = await json(session, 'POST', '/exec', { cmd: "head -c 5000 /dev/zero | tr '\\0' a; echo err >&2", maxOutputBytes: 100 })
    expect(t.body.stdout).toBe('a'.repeat(100))
    expect(t.body).toMatchObject({ stdoutTruncated: true, stderrTruncated: false, stderr: 'err\n' })
  })

  it('confines cwd', async () => {
    expect((await json(session, 'POST', '/exec', { cmd: 'pwd', cwd: '/etc' })).body.code).toBe('path_not_allowed')
    expect((await json(session, 'POST', '/exec', { cmd: 'pwd', cwd: 'missing-dir' })).status).toBe(404)
    fs.mkdirSync(path.join(ws, 'sub'), { recursive: true })
    expect((await json(session, 'POST', '/exec', { cmd: 'pwd', cwd: 'sub' })).body.stdout).toBe(`${path.join(ws, 'sub')}\n`)
    expect((await json(session, 'POST', '/exec', { cmd: 'pwd', cwd: '/tmp' })).body.code).toBe('path_not_allowed')
    expect((await json(session, 'POST', '/exec', { nope: 1 })).body.code).toBe('invalid_request')
  })

  it('kills background and setsid children on timeout', async () => {
    const pids = path.join(root, 'tmp', 'pids')
    const r = await json(session, 'POST', '/exec', {
      cmd: `sleep 100 & echo $! > ${pids}; setsid sleep 100 > /dev/null 2>&1 & echo $! >> ${pids}; sleep 100`,
      timeoutMs: 1500,
    })
    expect(r.body).toMatchObject({ exitCode: -1, timedOut: true })
    expect(r.body.stderr.endsWith('\nTimeout exceeded')).toBe(true)
    const [bg, detached] = fs.readFileSync(pids, 'utf8').trim().split('\n').map(Number)
    await until('background child gone', () => !alive(bg))
    // Only a cgroup can catch a child that left the process group.
    if (cgroupRoot) await until('setsid child gone', () => !alive(detached))
    else process.kill(detached, 'SIGKILL')
  })

  it('returns promptly when a background process keeps the output pipes open', async () => {
    const r = await json(session, 'POST', '/exec', { cmd: 'sleep 60 & echo $!; echo started' })
    expect(r.body.exitCode).toBe(0)
    const [pid, msg] = r.body.stdout.trim().split('\n')
    expect(msg).toBe('started')
    expect(alive(Number(pid))).toBe(true)
    process.kill(Number(pid), 'SIGKILL')
  })

  describe.each(['node', 'deno'] as const)('run %s', (runtime) => {
    const run = (body: object) => json(session, 'POST', '/run', { runtime, ...body })

    it('returns result.set values of any JSON kind', async () => {
      expect((await run({ code: 'result.set(42)' })).body).toMatchObject({ exitCode: 0, result: 42 })
      expect((await run({ code: 'result.set([1,2])' })).body.result).toEqual([1, 2])
      expect((await run({ code: "result.set('s')" })).body.result).toBe('s')
      expect((await run({ code: 'result.set(null)' })).body).toHaveProperty('result', null)
      expect((await run({ code: 'console.log("no result")' })).body).not.toHaveProperty('result')
    })

    it('reports thrown errors with exit code 1', async () => {
      const r = await run({ code: "throw new Error('x')" })
      expect(r.body.exitCode).toBe(1)
      expect(r.body.error).toMatchObject({ name: 'Error', message: 'x' })
      expect((await run({ code: "result.error('bad')" })).body).toMatchObject({ exitCode: 1, error: { name: 'Error', message: 'bad' } })
    })

    it('passes args and the env list, and runs as uid 1000', async () => {
      const code =
        runtime === 'deno'
          ? // Deno.uid() needs --allow-sys; the owner of a file the code creates says the same.
            "Deno.writeTextFileSync('owner-probe', ''); result.set({ args: Deno.args, foo: Deno.env.get('FOO'), uid: Deno.statSync('owner-probe').uid })"
          : 'result.set({ args: process.argv.slice(2), foo: process.env.FOO, uid: process.getuid() })'
      const r = await run({ code, args: ['a', 'b c'], env: ['FOO=bar=baz'] })
      expect(r.body.result).toEqual({ args: ['a', 'b c'], foo: 'bar=baz', uid: 1000 })
      const bad = await run({ code: '1', env: ['NOEQUALS'] })
      expect(bad).toMatchObject({ status: 400, body: { code: 'invalid_request', message: 'Invalid env entry (expected KEY=value): NOEQUALS' } })
    })

    it('runs a workspace file by path and refuses paths outside', async () => {
      fs.writeFileSync(path.join(ws, `mod-${runtime}.mjs`), "result.set('from file')")
      expect((await run({ path: `mod-${runtime}.mjs` })).body.result).toBe('from file')
      expect((await run({ path: '/etc/hostname' })).body.code).toBe('path_not_allowed')
      expect((await run({ code: '1', path: 'x' })).body.code).toBe('invalid_request')
    })

    it('kills the runtime on timeout', async () => {
      const r = await run({ code: 'setInterval(() => {}, 1000)', timeoutMs: 2000 })
      expect(r.body).toMatchObject({ exitCode: -1, timedOut: true })
      expect(r.body).not.toHaveProperty('result')
    })

    it('leaves no run dir behind but those of the warm runtimes waiting for the next call', () => {
      const runs = path.join(root, 'state', 'runs')
      const left = fs.readdirSync(runs)
      expect(left.length).toBeLessThanOrEqual(2)
      // A warm runtime's dir (possibly still being set up) never holds a program: no used run is left.
      for (const d of left) expect(fs.readdirSync(path.join(runs, d)).filter((f) => f.startsWith('snippet'))).toEqual([])
    })
  })

  it('gives Deno a bare --allow-env without an env list, only the listed keys with one, and no writes outside', async () => {
    const probe = "let e1, e2, v; try { v = [Deno.env.get('HOME'), Deno.env.get('RDS_UNSET')] } catch (e) { e1 = e.name }; try { Deno.writeTextFileSync('/etc/rds-x', 'x') } catch (e) { e2 = e.name }; result.set([v, e1, e2])"
    const bare = await json(session, 'POST', '/run', { runtime: 'deno', code: probe })
    expect(bare.body.result).toEqual([[ws, null], null, 'NotCapable'])
    const listed = await json(session, 'POST', '/run', { runtime: 'deno', code: probe, env: ['FOO=1'] })
    expect(listed.body.result).toEqual([null, 'NotCapable', 'NotCapable'])
  })

  it('uploads a validated archive as the user and downloads it back', async () => {
    const archive = await tgz([
      { name: 'd/', type: 'directory' },
      { name: 'd/a.txt', body: 'hello' },
    ])
    const up = await request(session, 'POST', '/files/upload?dest=up/nested', archive, 'application/gzip')
    expect(up.status).toBe(204)
    const file = path.join(ws, 'up/nested/d/a.txt')
    expect(fs.readFileSync(file, 'utf8')).toBe('hello')
    expect(fs.statSync(file).uid).toBe(1000)
    expect(fs.statSync(path.join(ws, 'up')).uid).toBe(1000)

    const down = await request(session, 'GET', '/files/download?path=up/nested')
    expect(down.status).toBe(200)
    expect(down.headers['content-type']).toBe('application/gzip')
    expect((await untgz(down.body)).get('./d/a.txt')).toBe('hello')
    const single = await request(session, 'GET', '/files/download?path=up/nested/d/a.txt')
    expect((await untgz(single.body)).get('a.txt')).toBe('hello')
    expect(fs.readdirSync(path.join(root, 'spool-root', 'spool'))).toEqual([])
  })

  it('takes plain tar uploads and gives plain tar downloads with format=tar', async () => {
    const archive = await plainTar([{ name: 'p/b.txt', body: 'plain' }])
    expect((await request(session, 'POST', '/files/upload?dest=plain', archive, 'application/x-tar')).status).toBe(204)
    const file = path.join(ws, 'plain/p/b.txt')
    expect(fs.readFileSync(file, 'utf8')).toBe('plain')
    expect(fs.statSync(file).uid).toBe(1000)
    const down = await request(session, 'GET', '/files/download?path=plain&format=tar')
    expect(down.status).toBe(200)
    expect(down.headers['content-type']).toBe('application/x-tar')
    expect((await untar(down.body)).get('./p/b.txt')).toBe('plain')
    // A hostile plain tar is refused like a tar.gz, and nothing of it is written.
    const evil = await plainTar([{ name: 'fine.txt', body: 'x' }, { name: 'ln', type: 'symlink', linkname: '/etc' }])
    const r = await request(session, 'POST', '/files/upload?dest=evil-plain', evil, 'application/x-tar')
    expect(r.status).toBe(400)
    expect(JSON.parse(r.body.toString()).code).toBe('archive_invalid')
    expect(fs.existsSync(path.join(ws, 'evil-plain'))).toBe(false)
    // A body without its length trailer may be an abandoned one (a plain tar cut at an entry
    // boundary still reads as complete): it is not extracted.
    const unconfirmed = await request(session, 'POST', '/files/upload?dest=unconfirmed', archive, 'application/x-tar', false)
    expect(unconfirmed.status).toBe(400)
    expect(fs.existsSync(path.join(ws, 'unconfirmed'))).toBe(false)
    expect(fs.readdirSync(path.join(root, 'spool-root', 'spool'))).toEqual([])
  })

  it('refuses bad uploads and downloads with the right codes', async () => {
    const evil = await tgz([{ name: 'ln', type: 'symlink', linkname: '/etc' }])
    const r1 = await request(session, 'POST', '/files/upload?dest=evil', evil)
    expect(r1.status).toBe(400)
    expect(JSON.parse(r1.body.toString()).code).toBe('archive_invalid')
    expect(fs.existsSync(path.join(ws, 'evil'))).toBe(false)
    const big = await tgz([{ name: 'a', body: 'x'.repeat(2000) }])
    expect((await request(session, 'POST', '/files/upload?dest=big&maxBytes=1000', big)).status).toBe(413)
    expect((await request(session, 'POST', '/files/upload?dest=/etc/x', big)).status).toBe(400)
    expect((await request(session, 'POST', '/files/upload', big)).status).toBe(400)
    expect((await request(session, 'GET', '/files/download?path=nope')).status).toBe(404)
    expect((await request(session, 'GET', '/files/download?path=/etc')).status).toBe(400)
    expect(fs.readdirSync(path.join(root, 'spool-root', 'spool'))).toEqual([])
  })

  it('installs peer files root-owned and read-only, replacing a planted symlink without following it', async () => {
    // The user owns the workspace and plants /workspace/peers -> a directory root must not touch.
    const outside = path.join(root, 'outside')
    fs.mkdirSync(outside, { mode: 0o755 })
    fs.writeFileSync(path.join(outside, 'keep.txt'), 'keep', { mode: 0o600 })
    fs.symlinkSync(outside, path.join(ws, 'peers'))
    fs.lchownSync(path.join(ws, 'peers'), 1000, 1000)
    const tree = await tgz([
      { name: 'index.json', body: '{"peers":[]}' },
      { name: 'a/', type: 'directory' },
      { name: 'a/README.md', body: '# a' },
    ])
    const r = await request(session, 'POST', '/peers/install', tree, 'application/gzip')
    expect(r.status).toBe(204)
    const peers = path.join(ws, 'peers')
    expect(fs.lstatSync(peers).isDirectory()).toBe(true)
    const st = fs.statSync(path.join(peers, 'a/README.md'))
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o444])
    expect(fs.statSync(peers).mode & 0o777).toBe(0o555)
    expect(fs.readFileSync(path.join(peers, 'index.json'), 'utf8')).toBe('{"peers":[]}')
    // The symlink's target is untouched: same files, same owner and modes.
    expect(fs.readdirSync(outside)).toEqual(['keep.txt'])
    expect(fs.statSync(outside).mode & 0o777).toBe(0o755)
    expect(fs.statSync(path.join(outside, 'keep.txt')).mode & 0o777).toBe(0o600)

    // A second install replaces the tree whole; an archive with a link is refused and changes nothing.
    expect((await request(session, 'POST', '/peers/install', await tgz([{ name: 'b.txt', body: 'b' }]), 'application/gzip')).status).toBe(204)
    expect(fs.readdirSync(peers)).toEqual(['b.txt'])
    const evil = await request(session, 'POST', '/peers/install', await tgz([{ name: 'ln', type: 'symlink', linkname: '/etc' }]), 'application/gzip')
    expect(JSON.parse(evil.body.toString()).code).toBe('archive_invalid')
    expect(fs.readdirSync(peers)).toEqual(['b.txt'])
    expect(fs.readdirSync(path.join(root, 'spool-root', 'peers-staging'))).toEqual([])
  })

  describe('streamed exec', () => {
    /** The events of one streamed request, with the order they arrived in. */
    async function events(route: string, body: object): Promise<{ status: number; type: string | undefined; events: any[] }> {
      const r = await request(session, 'POST', route, body)
      const lines = r.body.toString('utf8').split('\n').filter(Boolean)
      return { status: r.status, type: r.headers['content-type'] as string | undefined, events: lines.map((l) => JSON.parse(l)) }
    }
    const text = (evs: any[], stream: string) => Buffer.concat(evs.filter((e) => e.type === stream).map((e) => (e.dataBase64 !== undefined ? Buffer.from(e.dataBase64, 'base64') : Buffer.from(e.data, 'utf8'))))

    it('writes output events as they happen and ends with one exit event', async () => {
      const r = await events('/exec/stream', { cmd: 'echo out; echo err >&2; printf "\\377\\376"; exit 4' })
      expect(r.status).toBe(200)
      expect(r.type).toBe('application/x-ndjson')
      expect(r.events.at(-1)).toMatchObject({ type: 'exit', exitCode: 4, timedOut: false })
      expect(r.events.filter((e) => e.type === 'exit')).toHaveLength(1)
      expect(text(r.events, 'stdout')).toEqual(Buffer.concat([Buffer.from('out\n'), Buffer.from([0xff, 0xfe])]))
      expect(text(r.events, 'stderr').toString()).toBe('err\n')
    })

    it('refuses a bad request with an ordinary error reply, before anything runs', async () => {
      const r = await json(session, 'POST', '/exec/stream', { cmd: 'true', cwd: '/etc' })
      expect([r.status, r.body.code]).toEqual([400, 'path_not_allowed'])
      expect((await json(session, 'POST', '/exec/stream', { cmd: 'true', args: ['true'] })).body.code).toBe('invalid_request')
    })

    it('caps each stream and says so on the exit event', async () => {
      const r = await events('/exec/stream', { cmd: "head -c 5000 /dev/zero | tr '\\0' a; echo err >&2", maxOutputBytes: 100 })
      expect(text(r.events, 'stdout').toString()).toBe('a'.repeat(100))
      expect(r.events.at(-1)).toMatchObject({ type: 'exit', exitCode: 0, stdoutTruncated: true })
      expect(r.events.at(-1).stderrTruncated).toBeUndefined()
    })

    it('kills the tree on timeout', async () => {
      const r = await events('/exec/stream', { cmd: 'echo started; sleep 100', timeoutMs: 1000 })
      expect(text(r.events, 'stdout').toString()).toBe('started\n')
      expect(r.events.at(-1)).toMatchObject({ type: 'exit', exitCode: -1, timedOut: true })
    })

    it('kills the tree when the stream is cancelled before the exit', async () => {
      const pids = path.join(root, 'tmp', 'stream-pids')
      fs.rmSync(pids, { force: true })
      const req = session.request({ ':method': 'POST', ':path': '/exec/stream', 'content-type': 'application/json' })
      req.end(JSON.stringify({ cmd: `setsid sleep 100 > /dev/null 2>&1 & echo $! > ${pids}; echo ready; sleep 100` }))
      await new Promise<void>((resolve) => req.on('data', (c: Buffer) => c.toString().includes('ready') && resolve()))
      const detached = Number(fs.readFileSync(pids, 'utf8'))
      expect(alive(detached)).toBe(true)
      req.close()
      if (cgroupRoot) await until('setsid child gone after cancel', () => !alive(detached))
      else process.kill(detached, 'SIGKILL')
    })

    it('loses nothing when the reader is slower than the command, up to its exit and after', async () => {
      const req = session.request({ ':method': 'POST', ':path': '/exec/stream', 'content-type': 'application/json' })
      req.end(JSON.stringify({ cmd: "head -c 3000000 /dev/zero | tr '\\0' a; head -c 1000000 /dev/zero", maxOutputBytes: 10_000_000 }))
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => {
        chunks.push(c)
        // Read in sips: the agent is held back again and again, also after the command exited.
        req.pause()
        setTimeout(() => req.resume(), 5)
      })
      await new Promise((r) => req.once('end', r))
      const evs = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l))
      expect(evs.at(-1)).toMatchObject({ type: 'exit', exitCode: 0 })
      const out = text(evs, 'stdout')
      expect(out.length).toBe(4_000_000)
      expect(out.subarray(0, 3_000_000).every((b) => b === 0x61)).toBe(true)
      expect(out.subarray(3_000_000).every((b) => b === 0)).toBe(true)
    })

    it('ends after the exit when a background job keeps the pipes open but quiet', async () => {
      const r = await events('/exec/stream', { cmd: 'sleep 60 & echo $!; echo started' })
      expect(r.events.at(-1)).toMatchObject({ type: 'exit', exitCode: 0, timedOut: false })
      const [pid, msg] = text(r.events, 'stdout').toString().trim().split('\n')
      expect(msg).toBe('started')
      expect(alive(Number(pid))).toBe(true)
      process.kill(Number(pid), 'SIGKILL')
    })

    it('keeps output written just before the exit, and is not held by a background job that keeps writing', async () => {
      // A chatty job on the inherited pipes: the answer ends PIPE_DRAIN_MAX_MS after the exit at the
      // latest, not at the timeout, and what the command itself wrote last is there.
      const cmd = '(while true; do echo bg; sleep 0.02; done) & echo $!; head -c 200000 /dev/zero | tr "\\0" x; echo; echo last-line'
      const r = await json(session, 'POST', '/exec', { cmd, timeoutMs: 20_000 })
      expect(r.body).toMatchObject({ exitCode: 0, timedOut: false })
      // The job's "bg" lines may land anywhere, even inside the long line: count, do not compare lines.
      const pidOf = (out: string) => Number(out.split('\n').find((l) => /^\d+$/.test(l)))
      process.kill(pidOf(r.body.stdout), 'SIGKILL')
      expect(r.body.stdout.split('\n')).toContain('last-line')
      expect(r.body.stdout.replace(/[^x]/g, '').length).toBe(200_000)
      const s = await events('/exec/stream', { cmd, timeoutMs: 20_000 })
      expect(s.events.at(-1)).toMatchObject({ type: 'exit', exitCode: 0, timedOut: false })
      const streamed = text(s.events, 'stdout').toString()
      process.kill(pidOf(streamed), 'SIGKILL')
      expect(streamed.split('\n')).toContain('last-line')
    })

    it('runs argv without a shell: every argument arrives unchanged', async () => {
      const args = ['a b', '"q" \'s\'', '$(touch /tmp/x)', 'line1\nline2', '', '*', '\\']
      const r = await json(session, 'POST', '/exec', { args: ['node', '-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', ...args], env: { PATH: path.dirname(process.execPath) } })
      expect(r.status).toBe(200)
      expect(JSON.parse(r.body.stdout)).toEqual(args)
      const s = await events('/exec/stream', { args: ['printf', '%s|', ...args] })
      expect(text(s.events, 'stdout').toString()).toBe(args.map((a) => `${a}|`).join(''))
      expect((await json(session, 'POST', '/exec', { args: ['no-such-program-here'] })).body.exitCode).toBe(127)
    })

    it('streams a node run with its result on the exit event', async () => {
      const r = await events('/run/stream', { runtime: 'node', code: 'console.log("hi"); result.set({ n: 42 })' })
      expect(text(r.events, 'stdout').toString()).toBe('hi\n')
      expect(r.events.at(-1)).toMatchObject({ type: 'exit', exitCode: 0, result: { n: 42 } })
    })
  })

  it('survives repeated reconnects, graceful and hard', async () => {
    for (let i = 0; i < 6; i++) {
      const s = await connectAgent(sock)
      expect((await json(s, 'GET', '/health')).status).toBe(200)
      if (i % 2) s.destroy()
      else s.close()
    }
    expect((await json(session, 'GET', '/health')).status).toBe(200)
  })
})
