// Issue 13 through the real manager: peer arguments parsed (not pasted as code) in the provider,
// what the provider's exec history keeps of a peer call, history retention and masking, the
// snapshot quota; and start-up checks (API key, guest RAM directory) on managers that refuse to
// start or never boot a VM. One manager with two VMs (a provider and its consumer) serves the VM tests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ManagerProcess } from '../harness/manager-process.ts'

const S_TOKEN = 'sec-token-0123456789'
const ARG_SENTINEL = 'arg-sentinel-5f1c2a'

const ECHO_TS = `
export function echo(arg: Record<string, unknown>) {
  return {
    arg,
    ownProto: Object.hasOwn(arg, '__proto__'),
    inherited: (arg as { polluted?: unknown }).polluted ?? null,
    polluted: ({} as { polluted?: unknown }).polluted ?? null,
  }
}
`
const manifest = {
  sdk: { name: 'echo', description: 'Echoes its argument' },
  modules: [{ path: 'sdk/echo.ts', exports: [{ name: 'echo', description: 'echo', params: [{ name: 'arg', description: 'Any object', schema: { type: 'object' } }], returns: { description: 'What it saw', schema: { type: 'object' } }, examples: [{ description: 'Example', code: 'await echo({})' }] }] }],
}

let mgr: ManagerProcess
let provider: string
let consumer: string

const exec = (vmId: string, cmd: string) => mgr.exec(vmId, cmd)
const writeFile = (vmId: string, file: string, content: string) => mgr.writeFile(vmId, file, content)
const history = async (vmId: string) => (await mgr.request('GET', `/v1/vms/${vmId}/exec-logs?limit=200`)).body as { entries: { type: string; input: Record<string, unknown>; result: Record<string, unknown> }[]; hasMore: boolean }

describe('with VMs', () => {
  beforeAll(async () => {
    mgr = new ManagerProcess({ VM_SECRET_KEY: 'hardening-test-operator-key', EXEC_LOG_MAX_ENTRIES: '4', MAX_SNAPSHOTS: '1' })
    await mgr.start()
    const p = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], secretEnv: [`S_TOKEN=${S_TOKEN}`] })
    if (p.status !== 201) throw new Error(`provider create failed: ${JSON.stringify(p.body)}\n${mgr.output}`)
    provider = p.body.id
    await writeFile(provider, '/workspace/sdk/echo.ts', ECHO_TS)
    await writeFile(provider, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifest))
    const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], peerLinks: [{ alias: 'p', vmId: provider }] })
    if (c.status !== 201) throw new Error(`consumer create failed: ${JSON.stringify(c.body)}\n${mgr.output}`)
    consumer = c.body.id
  })

  afterAll(async () => {
    for (const id of [consumer, provider]) if (id) await mgr.request('DELETE', `/v1/vms/${id}`)
    await mgr?.cleanup()
  })

  it('hands a "__proto__" argument key to the provider as an own key, polluting nothing', async () => {
    const r = await mgr.request('POST', `/v1/vms/${consumer}/run-ts`, {
      code: `
        import { echo } from "file:///workspace/peers/p/proxy/sdk/echo.ts";
        const arg = JSON.parse('{"__pro' + 'to__":{"polluted":true},"mark":"${ARG_SENTINEL}"}');
        const r = await echo(arg);
        result.set({ ownProto: r.ownProto, inherited: r.inherited, polluted: r.polluted, keys: Object.keys(r.arg), back: JSON.stringify(r.arg) });`,
    })
    expect(r.status).toBe(200)
    expect(r.body.error).toBeUndefined()
    expect(r.body.result).toEqual({
      ownProto: true,
      inherited: null,
      polluted: null,
      keys: ['__proto__', 'mark'],
      back: `{"__proto__":{"polluted":true},"mark":"${ARG_SENTINEL}"}`,
    })
  })

  it("records a peer call in the provider's history without its arguments", async () => {
    const entries = (await history(provider)).entries
    const call = entries.find((e) => e.input.peerCall !== undefined)
    expect(call?.input).toEqual({
      peerCall: { consumerVmId: consumer, alias: 'p', modulePath: '/workspace/sdk/echo.ts', exportName: 'echo' },
      args: expect.stringMatching(/^\[not stored: \d+ bytes\]$/),
      timeoutMs: expect.any(Number),
    })
    expect(JSON.stringify(call?.input)).not.toContain(ARG_SENTINEL)
  })

  it('masks a secret cut by the 16 KiB output cap in the history', async () => {
    // 16380 bytes, then the secret: the cap falls inside it.
    const r = await exec(provider, `head -c 16380 /dev/zero | tr '\\0' a; printf '%s' "$S_TOKEN"`)
    expect(r.stdout.endsWith(S_TOKEN)).toBe(true)
    const stored = (await history(provider)).entries[0]!.result.stdout as string
    expect(stored.startsWith('a'.repeat(16380))).toBe(true)
    expect(stored).not.toContain(S_TOKEN.slice(0, 4))
  })

  it('keeps at most EXEC_LOG_MAX_ENTRIES entries per VM, the newest', async () => {
    for (let i = 0; i < 6; i++) await exec(consumer, `echo run-${i}`)
    const h = await history(consumer)
    expect(h.entries.map((e) => e.input.cmd)).toEqual(['echo run-5', 'echo run-4', 'echo run-3', 'echo run-2'])
    expect(h.hasMore).toBe(false)
  })

  it('refuses a snapshot beyond MAX_SNAPSHOTS with 429 snapshot_quota_exceeded', async () => {
    const first = await mgr.request('POST', `/v1/vms/${provider}/snapshots`)
    expect(first.status).toBe(201)
    try {
      const second = await mgr.request('POST', `/v1/vms/${provider}/snapshots`)
      expect(second.status).toBe(429)
      expect(second.body).toMatchObject({ code: 'snapshot_quota_exceeded', maxSnapshots: 1 })
      expect(second.body.message).toMatch(/maxSnapshots=1/)
      expect((await mgr.request('GET', '/v1/snapshots')).body).toHaveLength(1)
      expect((await mgr.request('POST', '/v1/vms/vm-does-not-exist/snapshots')).status).toBe(404)
    } finally {
      await mgr.request('DELETE', `/v1/snapshots/${first.body.id}`)
    }
  })
})

describe('start-up checks', () => {
  const instanceOf = (m: ManagerProcess) => m.netns.slice(4)

  it('refuses an API_KEY shorter than 16 characters (exit code 2), without repeating it', async () => {
    const m = new ManagerProcess({ API_KEY: 'short-key-12345' })
    try {
      await expect(m.start()).rejects.toThrow(/manager exited/)
      expect(await m.exitCode()).toBe(2)
      expect(m.stderr).toMatch(/configuration error: API_KEY must be at least 16 characters/)
      expect(m.output).not.toContain('short-key-12345')
    } finally {
      await m.cleanup()
    }
  })

  it('shows a generated key on stderr only, never in the JSON log on stdout', async () => {
    const m = new ManagerProcess({ API_KEY: '', LOG_LEVEL: 'info' })
    try {
      await m.start()
      await m.stop()
      await m.exitCode()
      const key = fs.readFileSync(path.join(m.storageRoot, 'api-key'), 'utf8').trim()
      expect(key.length).toBeGreaterThanOrEqual(32)
      expect(m.stderr).toContain(key)
      const lines = m.stdout.split('\n').filter(Boolean)
      expect(lines.length).toBeGreaterThan(0)
      for (const line of lines) expect(() => JSON.parse(line)).not.toThrow()
      expect(m.stdout).not.toContain(key)
    } finally {
      await m.cleanup()
    }
  })

  it.each([
    ['owned by another uid', (dir: string) => (fs.mkdirSync(dir, { mode: 0o700 }), fs.chownSync(dir, 1000, 1000)), /owned by uid 1000/],
    ['a symbolic link', (dir: string, target: string) => fs.symlinkSync(target, dir), /is a symbolic link/],
  ])('refuses to start when the guest RAM directory exists %s', async (_what, make, message) => {
    const m = new ManagerProcess()
    const dir = `/dev/shm/rds-${instanceOf(m)}`
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-ram-target-'))
    make(dir, target)
    try {
      await expect(m.start()).rejects.toThrow(/manager exited/)
      expect(await m.exitCode()).toBe(2)
      expect(m.stderr).toMatch(message)
      expect(m.stderr).toContain(dir)
      expect(fs.readdirSync(target)).toEqual([])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
      fs.rmSync(target, { recursive: true, force: true })
      await m.cleanup()
    }
  })

  it('refuses to boot into a RAM directory someone made after the start, writing nothing through it', async () => {
    const m = new ManagerProcess()
    const dir = `/dev/shm/rds-${instanceOf(m)}`
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-ram-target-'))
    try {
      await m.start()
      expect(fs.existsSync(dir)).toBe(false)
      fs.symlinkSync(target, dir)
      const r = await m.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
      expect(r.status).toBe(500)
      expect(r.body.code).toBe('ram_dir_unsafe')
      expect(r.body.message).toContain(`${dir} (VM_RAM_DIR) is a symbolic link`)
      expect(fs.readdirSync(target)).toEqual([])
      expect((await m.request('GET', '/v1/vms')).body).toEqual([])
    } finally {
      fs.rmSync(dir, { force: true })
      fs.rmSync(target, { recursive: true, force: true })
      await m.cleanup()
    }
  })
})
