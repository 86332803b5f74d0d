// The file API through the real manager and a real VM (one VM for the whole file, on the shared
// manager): every operation, ranges, a 256 MiB round trip with the manager's memory bounded,
// symlink escapes planted by the user, and the watch (events, and its guest watcher gone once the
// client leaves).
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager, sharedManagerPid, VM_ORIGINS } from '../harness/shared-manager.ts'

let api: ManagerClient
let vmId: string
const q = encodeURIComponent
const files = (sub = '') => `/v1/vms/${vmId}/files${sub}`
const key = () => ({ 'x-api-key': api.apiKey })

const rssKb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1])

/** `total` bytes of a deterministic pseudo-random stream, generated as it is read. */
function generated(total: number, seed: string): Readable {
  let sent = 0
  let block = createHash('sha512').update(seed).digest()
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null)
      const chunk = Buffer.allocUnsafe(Math.min(1024 * 1024, total - sent))
      for (let o = 0; o < chunk.length; o += block.length) {
        block = createHash('sha512').update(block).digest()
        block.copy(chunk, o)
      }
      sent += chunk.length
      this.push(chunk)
    },
  })
}

beforeAll(async () => {
  api = await sharedManager()
  const r = await api.request('POST', '/v1/vms', { ...VM_ORIGINS[0].shape, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
  vmId = r.body.id
})

afterAll(async () => {
  if (vmId) await api.request('DELETE', `/v1/vms/${vmId}`)
})

describe('the file API of a running VM', () => {
  it('writes a file (parents created, as uid 1000), reads it, stats and lists it', async () => {
    const put = await api.request('PUT', `${files()}?path=${q('/workspace/a/b/hello.txt')}&mode=640`, new TextEncoder().encode('hello files'), { 'content-type': 'application/x-www-form-urlencoded' })
    expect(put.status).toBe(204)
    expect((await api.exec(vmId, 'stat -c "%u %a %s" /workspace/a/b/hello.txt')).stdout).toBe('1000 640 11\n')
    const get = await api.request('GET', `${files()}?path=a/b/hello.txt`)
    expect(get.status).toBe(200)
    expect(get.headers.get('content-type')).toBe('application/octet-stream')
    expect(get.headers.get('content-length')).toBe('11')
    expect(new TextDecoder().decode(get.body)).toBe('hello files')
    const stat = await api.request('GET', `${files('/stat')}?path=a/b/hello.txt`)
    expect(stat.body).toMatchObject({ name: 'hello.txt', path: '/workspace/a/b/hello.txt', type: 'file', size: 11, mode: '640' })
    expect(Date.parse(stat.body.mtime)).toBeGreaterThan(0)
    const list = await api.request('GET', `${files('/list')}?path=/workspace/a&depth=2`)
    expect(list.status).toBe(200)
    expect(list.body.map((e: { path: string; type: string }) => `${e.type} ${e.path}`)).toEqual(['dir /workspace/a/b', 'file /workspace/a/b/hello.txt'])
    const missing = await api.request('GET', `${files()}?path=nope.txt`)
    expect([missing.status, missing.body.code]).toEqual([404, 'path_not_found'])
    const dir = await api.request('GET', `${files()}?path=a`)
    expect([dir.status, dir.body.code]).toEqual([409, 'is_a_directory'])
    const outside = await api.request('GET', `${files('/stat')}?path=${q('/etc/passwd')}`)
    expect([outside.status, outside.body.code]).toEqual([400, 'path_not_allowed'])
  })

  it('reads byte ranges (206 with Content-Range) and refuses ranges outside the file (416)', async () => {
    const r = await api.request('GET', `${files()}?path=a/b/hello.txt`, undefined, { range: 'bytes=6-9' })
    expect([r.status, new TextDecoder().decode(r.body), r.headers.get('content-range'), r.headers.get('content-length')]).toEqual([206, 'file', 'bytes 6-9/11', '4'])
    const tail = await api.request('GET', `${files()}?path=a/b/hello.txt`, undefined, { range: 'bytes=-5' })
    expect([tail.status, new TextDecoder().decode(tail.body), tail.headers.get('content-range')]).toEqual([206, 'files', 'bytes 6-10/11'])
    const open = await api.request('GET', `${files()}?path=a/b/hello.txt`, undefined, { range: 'bytes=9-' })
    expect(new TextDecoder().decode(open.body)).toBe('es')
    for (const range of ['bytes=11-', 'bytes=0-1,4-5', 'items=0-1']) {
      const bad = await api.request('GET', `${files()}?path=a/b/hello.txt`, undefined, { range })
      expect([range, bad.status, bad.body.code]).toEqual([range, 416, 'range_not_satisfiable'])
    }
  })

  it('globs, moves, chmods, makes directories and deletes (409 for a non-empty directory without recursive)', async () => {
    await api.exec(vmId, 'mkdir -p /workspace/g/x /workspace/g/y && touch /workspace/g/x/1.ts /workspace/g/y/2.ts /workspace/g/y/3.js')
    const g = await api.request('GET', `${files('/glob')}?pattern=${q('g/**/*.ts')}`)
    expect(g.body.map((e: { path: string }) => e.path)).toEqual(['/workspace/g/x/1.ts', '/workspace/g/y/2.ts'])
    expect((await api.request('GET', `${files('/glob')}?pattern=${q('../etc/*')}`)).body.code).toBe('path_not_allowed')
    expect((await api.request('POST', files('/move'), { from: 'g/y/3.js', to: '/workspace/m/n/3.js' })).status).toBe(204)
    expect((await api.request('POST', files('/chmod'), { path: 'm/n/3.js', mode: '755' })).status).toBe(204)
    expect((await api.exec(vmId, 'stat -c %a /workspace/m/n/3.js; test -e /workspace/g/y/3.js || echo moved')).stdout).toBe('755\nmoved\n')
    expect((await api.request('POST', files('/chmod'), { path: 'm/n/3.js', mode: 'rwx' })).status).toBe(400)
    expect((await api.request('POST', files('/mkdir'), { path: 'made/deep/er' })).status).toBe(204)
    expect((await api.request('POST', files('/mkdir'), { path: 'made/deep/er' })).status).toBe(204)
    const onFile = await api.request('POST', files('/mkdir'), { path: 'm/n/3.js' })
    expect([onFile.status, onFile.body.code]).toEqual([409, 'already_exists'])
    const full = await api.request('DELETE', `${files()}?path=g`)
    expect([full.status, full.body.code]).toEqual([409, 'directory_not_empty'])
    expect((await api.exec(vmId, 'test -e /workspace/g/x/1.ts && echo kept')).stdout).toBe('kept\n')
    expect((await api.request('DELETE', `${files()}?path=g&recursive=true`)).status).toBe(204)
    expect((await api.request('DELETE', `${files()}?path=${q('/workspace/m/n/3.js')}`)).status).toBe(204)
    expect((await api.exec(vmId, 'ls /workspace')).stdout.split('\n')).not.toContain('g')
    const gone = await api.request('DELETE', `${files()}?path=g`)
    expect([gone.status, gone.body.code]).toEqual([404, 'path_not_found'])
  })

  it('refuses symlinks the user planted towards root-only places, and gives nothing through them', async () => {
    await api.exec(vmId, 'cd /workspace && ln -s /etc/shadow shadow && ln -s /root rootdir && ln -s / slash')
    for (const path of ['shadow', 'slash/etc/shadow', 'slash/root/x']) {
      const r = await api.request('GET', `${files()}?path=${q(path)}`)
      expect([path, r.status, r.body.code]).toEqual([path, 400, 'path_not_allowed'])
    }
    for (const path of ['rootdir', 'slash', 'slash/etc']) {
      const r = await api.request('GET', `${files('/list')}?path=${q(path)}`)
      expect([path, r.status, r.body.code]).toEqual([path, 400, 'path_not_allowed'])
    }
    const write = await api.request('PUT', `${files()}?path=${q('slash/etc/owned')}`, new TextEncoder().encode('x'))
    expect([write.status, write.body.code]).toEqual([400, 'path_not_allowed'])
    expect((await api.request('POST', files('/move'), { from: 'a/b/hello.txt', to: 'slash/etc/hello' })).body.code).toBe('path_not_allowed')
    expect((await api.request('POST', files('/chmod'), { path: 'shadow', mode: '666' })).body.code).toBe('path_not_allowed')
    // The glob never walks through a link.
    const g = await api.request('GET', `${files('/glob')}?pattern=${q('**/shadow')}`)
    expect(g.body.map((e: { path: string; type: string }) => `${e.type} ${e.path}`)).toEqual(['symlink /workspace/shadow'])
    // A link is described and deleted as the link; its target is untouched.
    expect((await api.request('GET', `${files('/stat')}?path=shadow`)).body).toMatchObject({ type: 'symlink', path: '/workspace/shadow' })
    expect((await api.request('DELETE', `${files()}?path=slash&recursive=true`)).status).toBe(204)
    expect((await api.exec(vmId, 'test -L /workspace/slash || echo gone; test -d /etc && echo etc')).stdout).toBe('gone\netc\n')
    // The operations have uid 1000's rights, not root's: a directory its owner made read-only stays so.
    await api.exec(vmId, 'mkdir -p /workspace/ro && chmod 555 /workspace/ro')
    const ro = await api.request('PUT', `${files()}?path=${q('ro/x.txt')}`, new TextEncoder().encode('x'))
    expect([ro.status, ro.body.code]).toEqual([403, 'permission_denied'])
    const rm = await api.request('DELETE', `${files()}?path=ro`)
    expect(rm.status).toBe(204)
    await api.exec(vmId, 'echo private > /workspace/locked && chmod 000 /workspace/locked')
    const locked = await api.request('GET', `${files()}?path=locked`)
    expect([locked.status, locked.body.code]).toEqual([403, 'permission_denied'])
  })

  it('round-trips 256 MiB with the manager\'s memory bounded', async () => {
    const size = 256 * 1024 * 1024
    const pid = sharedManagerPid()
    const before = rssKb(pid)
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid))), 100)
    try {
      const sent = createHash('sha256')
      const body = generated(size, 'files-api')
      body.on('data', (c: Buffer) => sent.update(c))
      const put = await fetch(`${api.baseUrl}${files()}?path=big.bin`, { method: 'PUT', headers: { ...key(), 'content-type': 'application/octet-stream' }, body: Readable.toWeb(body) as ReadableStream, duplex: 'half' } as RequestInit)
      expect(put.status).toBe(204)
      const got = await fetch(`${api.baseUrl}${files()}?path=big.bin`, { headers: key() })
      expect([got.status, got.headers.get('content-length')]).toEqual([200, String(size)])
      const received = createHash('sha256')
      let n = 0
      for await (const c of got.body as unknown as AsyncIterable<Uint8Array>) {
        received.update(c)
        n += c.length
      }
      expect(n).toBe(size)
      expect(received.digest('hex')).toBe(sent.digest('hex'))
    } finally {
      clearInterval(sampler)
      await api.request('DELETE', `${files()}?path=big.bin`)
    }
    // A memory bound, not a timing: the file passed through in flow-controlled chunks.
    const growthMiB = (peak - before) / 1024
    console.log(`manager RSS ${before >> 10} MiB before, peak ${peak >> 10} MiB during the 256 MiB round trip (+${growthMiB.toFixed(1)} MiB)`)
    expect(growthMiB).toBeLessThan(64)
  })

  it('leaves nothing under the final name when the client abandons an upload', async () => {
    await api.request('PUT', `${files()}?path=kept.bin`, new TextEncoder().encode('old content'))
    const req = http.request(`${api.baseUrl}${files()}?path=kept.bin`, { method: 'PUT', headers: { ...key(), 'content-type': 'application/octet-stream' } })
    req.on('error', () => {})
    req.write(Buffer.alloc(4 * 1024 * 1024, 7))
    await new Promise((r) => setTimeout(r, 2000))
    req.destroy()
    // The part file goes once the guest noticed; the old file is never replaced by the partial one.
    const listing = async () => (await api.exec(vmId, 'ls -a /workspace | grep kept.bin || true')).stdout
    await api.waitFor('the part file to go', async () => ((await listing()) === 'kept.bin\n' ? true : undefined), 120_000)
    expect(await listing()).toBe('kept.bin\n')
    const r = await api.request('GET', `${files()}?path=kept.bin`)
    expect(new TextDecoder().decode(r.body)).toBe('old content')
  })

  it('watches create, write, rename and remove, and stops the guest watcher when the client leaves', async () => {
    await api.exec(vmId, 'mkdir -p /workspace/w')
    const abort = new AbortController()
    const r = await fetch(`${api.baseUrl}${files('/watch')}?path=w&recursive=true`, { headers: key(), signal: abort.signal })
    expect([r.status, r.headers.get('content-type')]).toEqual([200, 'text/event-stream'])
    const events: { type: string; path?: string; from?: string }[] = []
    const reading = (async () => {
      let text = ''
      try {
        for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) {
          text += Buffer.from(c).toString()
          const parts = text.split('\n\n')
          text = parts.pop()!
          for (const p of parts) if (p.startsWith('data: ')) events.push(JSON.parse(p.slice(6)))
        }
      } catch {}
    })()
    const until = (what: string, pred: () => boolean) => api.waitFor(what, async () => (pred() ? true : undefined), 120_000)
    await until('the watch to be ready', () => events.some((e) => e.type === 'ready'))
    const watchers = async () => Number((await api.exec(vmId, "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '[f]ile-worker.mjs watch' || true")).stdout.trim())
    expect(await watchers()).toBe(1)
    await api.exec(vmId, 'echo one > /workspace/w/a.txt')
    await until('create and write', () => events.some((e) => e.type === 'write' && e.path === '/workspace/w/a.txt'))
    await api.exec(vmId, 'mv /workspace/w/a.txt /workspace/w/b.txt')
    await until('rename', () => events.some((e) => e.type === 'rename'))
    await api.exec(vmId, 'rm /workspace/w/b.txt')
    await until('remove', () => events.some((e) => e.type === 'remove' && e.path === '/workspace/w/b.txt'))
    expect(events).toEqual(
      expect.arrayContaining([
        { type: 'ready' },
        { type: 'create', path: '/workspace/w/a.txt' },
        { type: 'write', path: '/workspace/w/a.txt' },
        { type: 'rename', path: '/workspace/w/b.txt', from: '/workspace/w/a.txt' },
        { type: 'remove', path: '/workspace/w/b.txt' },
      ]),
    )
    abort.abort()
    await reading
    await api.waitFor('the guest watcher to stop', async () => ((await watchers()) === 0 ? true : undefined), 120_000)
    expect(await watchers()).toBe(0)
  })
})
