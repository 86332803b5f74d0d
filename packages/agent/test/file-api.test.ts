// The file API of the real agent on the host (test mode, helpers/host-agent.ts): every operation,
// confinement against symlinks planted by the user, atomic writes, ranges and the watch. The same
// behaviour through a real VM and the manager is in packages/manager/test/integration/files-api.test.ts.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { json, request } from './helpers/agent-client.ts'
import { canRunHostAgent, putBody, startHostAgent, type HostAgent } from './helpers/host-agent.ts'

let a: HostAgent
const asUser = (cmd: string) => execFileSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'sh', '-c', cmd], { cwd: a.ws, encoding: 'utf8' })
const q = (s: string) => encodeURIComponent(s)

/** The agent's children running the file worker in `mode` (serve or watch). */
const workerPids = (mode: string): number[] =>
  fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const ppid = Number(/^PPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${d}/status`, 'utf8'))![1])
        const argv = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
        return ppid === a.pid && argv.some((x) => x.endsWith('file-worker.ts')) && argv.includes(mode)
      } catch {
        return false
      }
    })
    .map(Number)

describe.skipIf(!canRunHostAgent)('file API (host agent)', () => {
  beforeAll(async () => {
    a = await startHostAgent()
  }, 60_000)
  afterAll(async () => {
    await a?.stop()
  })

  it('writes (parents created), reads whole and in ranges, stats and lists', async () => {
    const w = await putBody(a.session, `/files/write?path=${q('deep/er/f.txt')}&mode=640`, 'hello world')
    expect(w.status).toBe(204)
    expect(fs.readFileSync(path.join(a.ws, 'deep/er/f.txt'), 'utf8')).toBe('hello world')
    const st = fs.statSync(path.join(a.ws, 'deep/er/f.txt'))
    expect([st.uid, st.mode & 0o777]).toEqual([1000, 0o640])
    const r = await request(a.session, 'GET', `/files/read?path=${q(`${a.ws}/deep/er/f.txt`)}`)
    expect([r.status, r.body.toString(), r.headers['content-length'], r.headers['x-rds-file-size']]).toEqual([200, 'hello world', '11', '11'])
    const part = await request(a.session, 'GET', `/files/read?path=deep/er/f.txt&range=${q('-5')}`)
    expect([part.body.toString(), part.headers['x-rds-file-offset']]).toEqual(['world', '6'])
    expect((await json(a.session, 'GET', `/files/read?path=deep/er/f.txt&range=11-`)).body.code).toBe('range_not_satisfiable')
    const stat = await json(a.session, 'POST', '/files/stat', { path: 'deep/er/f.txt' })
    expect(stat.body).toMatchObject({ name: 'f.txt', path: `${a.ws}/deep/er/f.txt`, type: 'file', size: 11, mode: '640' })
    const list = await json(a.session, 'POST', '/files/list', { path: 'deep', depth: 2 })
    expect(list.body.entries.map((e: { path: string; type: string }) => [e.path, e.type])).toEqual([
      [`${a.ws}/deep/er`, 'dir'],
      [`${a.ws}/deep/er/f.txt`, 'file'],
    ])
    // A replaced file keeps its mode when none is given.
    await putBody(a.session, '/files/write?path=deep/er/f.txt', 'v2')
    expect(fs.statSync(path.join(a.ws, 'deep/er/f.txt')).mode & 0o777).toBe(0o640)
  })

  it('moves, chmods, globs, and deletes only with recursive when not empty', async () => {
    asUser('mkdir -p g/a g/b && touch g/a/x.ts g/b/y.ts g/b/z.js')
    const g = await json(a.session, 'POST', '/files/glob', { pattern: 'g/**/*.ts' })
    expect(g.body.entries.map((e: { path: string }) => e.path)).toEqual([`${a.ws}/g/a/x.ts`, `${a.ws}/g/b/y.ts`])
    expect((await json(a.session, 'POST', '/files/glob', { pattern: '../*' })).body.code).toBe('path_not_allowed')
    expect((await json(a.session, 'POST', '/files/move', { from: 'g/b/z.js', to: 'h/z2.js' })).status).toBe(204)
    expect(fs.existsSync(path.join(a.ws, 'h/z2.js'))).toBe(true)
    expect((await json(a.session, 'POST', '/files/chmod', { path: 'h/z2.js', mode: '0755' })).status).toBe(204)
    expect(fs.statSync(path.join(a.ws, 'h/z2.js')).mode & 0o777).toBe(0o755)
    expect((await json(a.session, 'POST', '/files/chmod', { path: 'h/z2.js', mode: '4755' })).status).toBe(400)
    expect((await json(a.session, 'POST', '/files/mkdir', { path: 'h' })).status).toBe(204)
    expect((await json(a.session, 'POST', '/files/mkdir', { path: 'h/z2.js' })).body.code).toBe('already_exists')
    const refused = await json(a.session, 'POST', '/files/delete', { path: 'g' })
    expect([refused.status, refused.body.code]).toEqual([409, 'directory_not_empty'])
    expect((await json(a.session, 'POST', '/files/delete', { path: 'g', recursive: true })).status).toBe(204)
    expect(fs.existsSync(path.join(a.ws, 'g'))).toBe(false)
    expect((await json(a.session, 'POST', '/files/stat', { path: 'g' })).body.code).toBe('path_not_found')
    expect((await json(a.session, 'POST', '/files/delete', { path: a.ws, recursive: true })).body.code).toBe('path_not_allowed')
  })

  it('refuses symlinks that lead out, and deletes a link as the link', async () => {
    fs.writeFileSync(path.join(a.root, 'secret'), 'root only')
    fs.chmodSync(path.join(a.root, 'secret'), 0o600)
    asUser(`ln -s ${a.root}/secret s1 && ln -s / rootdir && ln -s /etc/shadow s2`)
    for (const p of ['s1', 's2', 'rootdir/etc/passwd']) {
      const r = await json(a.session, 'GET', `/files/read?path=${q(p)}`)
      expect([p, r.status, r.body.code]).toEqual([p, 400, 'path_not_allowed'])
    }
    expect((await putBody(a.session, '/files/write?path=rootdir/tmp/x', 'x')).status).toBe(400)
    expect((await json(a.session, 'POST', '/files/list', { path: 'rootdir' })).body.code).toBe('path_not_allowed')
    expect((await json(a.session, 'POST', '/files/chmod', { path: 's1', mode: '777' })).body.code).toBe('path_not_allowed')
    // Listed and stat'ed as links, never followed.
    expect((await json(a.session, 'POST', '/files/stat', { path: 's1' })).body.type).toBe('symlink')
    expect((await json(a.session, 'POST', '/files/delete', { path: 's1' })).status).toBe(204)
    expect(fs.readFileSync(path.join(a.root, 'secret'), 'utf8')).toBe('root only')
  })

  it('has the user\'s rights, not root\'s: an unreadable file is a 403 before any byte', async () => {
    asUser('echo private > locked && chmod 000 locked')
    const r = await json(a.session, 'GET', '/files/read?path=locked')
    expect([r.status, r.body.code]).toEqual([403, 'permission_denied'])
    const watchFile = await json(a.session, 'GET', '/files/watch?path=locked')
    expect([watchFile.status, watchFile.body.code]).toEqual([409, 'not_a_directory'])
  })

  it('restarts the file worker when user code killed it', async () => {
    expect((await json(a.session, 'POST', '/files/stat', { path: '.' })).status).toBe(200)
    const [pid] = workerPids('serve')
    expect(pid).toBeGreaterThan(0)
    // It is the user's process: uid 1000 may kill it.
    asUser(`kill -9 ${pid}`)
    for (let i = 0; i < 100 && workerPids('serve').includes(pid!); i++) await new Promise((r) => setTimeout(r, 50))
    expect((await json(a.session, 'POST', '/files/stat', { path: '.' })).body).toMatchObject({ type: 'dir', path: a.ws })
    expect(workerPids('serve')).toHaveLength(1)
    expect(workerPids('serve')).not.toContain(pid)
  })

  it('commits a body only with its length trailer', async () => {
    // Ended on the wire but never confirmed: what Node sends for a stream it then resets.
    const r = await request(a.session, 'PUT', '/files/write?path=unconfirmed.txt', 'complete-looking', 'application/octet-stream')
    expect(r.status).toBe(400)
    expect(fs.readdirSync(a.ws).filter((n) => n.includes('unconfirmed'))).toEqual([])
  })

  it('leaves no file under the final name when an upload is aborted', async () => {
    const req = a.session.request({ ':method': 'PUT', ':path': '/files/write?path=aborted.bin', 'content-type': 'application/octet-stream' })
    req.write(Buffer.alloc(256 * 1024, 1))
    await new Promise((r) => setTimeout(r, 300))
    req.close(8 /* CANCEL */)
    let finalName = false
    // The part file goes once the agent noticed (a bound, not a timing: slow machines get there later).
    for (let i = 0; i < 600 && fs.readdirSync(a.ws).some((n) => n.includes('aborted.bin')); i++) {
      finalName ||= fs.existsSync(path.join(a.ws, 'aborted.bin'))
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(finalName).toBe(false)
    expect(fs.readdirSync(a.ws).filter((n) => n.includes('aborted.bin')), a.log()).toEqual([])
  })

  it('watches create, write, rename and remove until the client leaves, then stops the watcher', async () => {
    asUser('mkdir -p w')
    const req = a.session.request({ ':method': 'GET', ':path': `/files/watch?path=w&recursive=true` })
    let text = ''
    req.on('data', (c: Buffer) => (text += c.toString()))
    const events = () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l))
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 50))
    }
    await until(() => events().some((e) => e.type === 'ready'))
    expect(workerPids('watch')).toHaveLength(1)
    asUser('echo 1 > w/a')
    await until(() => events().some((e) => e.type === 'write'))
    asUser('mv w/a w/b')
    await until(() => events().some((e) => e.type === 'rename'))
    asUser('rm w/b')
    await until(() => events().some((e) => e.type === 'remove'))
    expect(events()).toEqual(
      expect.arrayContaining([
        { type: 'ready' },
        { type: 'create', path: `${a.ws}/w/a` },
        { type: 'write', path: `${a.ws}/w/a` },
        { type: 'rename', path: `${a.ws}/w/b`, from: `${a.ws}/w/a` },
        { type: 'remove', path: `${a.ws}/w/b` },
      ]),
    )
    req.close()
    await until(() => workerPids('watch').length === 0)
    expect(workerPids('watch')).toEqual([])
  })
})
