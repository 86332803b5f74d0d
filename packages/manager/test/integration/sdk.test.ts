// The TypeScript SDK against the shared manager and real VMs: the surface of Sandbox, its typed
// errors, configuration from the environment, async dispose, and the built package as ESM, CJS
// and under Deno.
import { execFileSync, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
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
  beforeAll(() => execFileSync(process.execPath, [path.join(repo, 'packages/sdk/build.ts')], { stdio: 'pipe' }))

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
})
