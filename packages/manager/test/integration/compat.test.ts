// The original run-dat-sheesh's behaviour, line by line from its reference tables
// (../shared/reference/rundatsheesh-behaviour.md §1 API, §2 peers, §3 agent and sandbox), checked
// against a real manager with real VMs. A client written for the original must get the same
// answers; where we deliberately differ, docs/compat.md says so and the test pins our answer.
// One VM (the original's most common shape) is shared; lines that change its state run last.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recipeHash } from '@rds/guest-image'
import { CACHE_DIR, ManagerProcess } from '../harness/manager-process.ts'
import { tarGz as tarGzBuffer } from '../harness/archives.ts'

const MiB = 1024 * 1024
const tarGz = (files: Record<string, string>) => new Uint8Array(tarGzBuffer(files))
const entries = (gz: Uint8Array): string[] => execFileSync('tar', ['-tzf', '-'], { input: gz }).toString().trim().split('\n')
const SECRET = 'sk-compat-5e6f7a8b'

let mgr: ManagerProcess
let vm: string

beforeAll(async () => {
  mgr = new ManagerProcess({ VM_SECRET_KEY: 'compat-suite', MAX_VMS: '2', MAX_ALLOW_IPS: '3' })
  await mgr.start()
  // An unknown field is dropped, as the original's validator did.
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], secretEnv: [`PROVIDER_TOKEN=${SECRET}`], someFutureField: true })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
  vm = r.body.id
})

afterAll(async () => {
  await mgr?.cleanup()
})

const exec = async (cmd: string, extra: object = {}) => {
  const r = await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd, ...extra })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body as { exitCode: number; stdout: string; stderr: string }
}
const runTs = (body: object) => mgr.request('POST', `/v1/vms/${vm}/run-ts`, body)
const runJs = (body: object) => mgr.request('POST', `/v1/vms/${vm}/run-js`, body)

describe('§1.0 cross-cutting', () => {
  it('needs X-API-Key on /v1 only, and answers 401 {message: "Unauthorized"}', async () => {
    const r = await mgr.fetch('/v1/vms')
    expect(r.status).toBe(401)
    expect((await r.json()).message).toBe('Unauthorized')
    const wrong = await mgr.fetch('/v1/vms', { headers: { 'x-api-key': 'nope' } })
    expect(wrong.status).toBe(401)
    for (const open of ['/openapi.json', '/swagger/', '/docs/']) expect((await fetch(`${mgr.baseUrl}${open}`)).status).toBe(200)
  })

  it('refuses an empty, "undefined" or "null" VM id with 400 Invalid VM id', async () => {
    for (const id of ['undefined', 'null', 'NULL', '%20']) {
      const r = await mgr.request('GET', `/v1/vms/${id}`)
      expect(r.status).toBe(400)
      expect(r.body.message).toBe('Invalid VM id')
    }
  })

  it('answers a missing VM with 404 "VM not found" on GET and "VM <id> not found" elsewhere', async () => {
    const get = await mgr.request('GET', '/v1/vms/no-such-vm')
    expect(get).toMatchObject({ status: 404, body: { message: 'VM not found' } })
    const stop = await mgr.request('POST', '/v1/vms/no-such-vm/stop')
    expect(stop).toMatchObject({ status: 404, body: { message: 'VM no-such-vm not found' } })
    const logs = await mgr.request('GET', '/v1/vms/no-such-vm/exec-logs')
    expect(logs).toMatchObject({ status: 404, body: { message: 'VM not found' } })
  })

  it('describes itself as OpenAPI 3.0.3 "run-dat-sheesh manager API" with the ApiKeyAuth scheme and binary file bodies', async () => {
    const doc = (await mgr.request('GET', '/openapi.json')).body
    expect(doc.openapi).toBe('3.0.3')
    expect(doc.info.title).toBe('run-dat-sheesh manager API')
    expect(doc.components.securitySchemes.ApiKeyAuth).toEqual({ type: 'apiKey', in: 'header', name: 'X-API-Key' })
    const upload = doc.paths['/v1/vms/{id}/files/upload'].post.requestBody.content
    expect(Object.values(upload).some((c: any) => c.schema?.format === 'binary')).toBe(true)
    expect(doc.paths['/v1/vms/{id}/files/download'].get.responses['200'].content['application/gzip'].schema.format).toBe('binary')
  })
})

describe('§1.1 docs and unknown routes', () => {
  it('serves Swagger UI under /swagger and the spec under /swagger/json', async () => {
    const ui = await fetch(`${mgr.baseUrl}/swagger/`)
    expect(ui.headers.get('content-type')).toContain('text/html')
    expect((await (await fetch(`${mgr.baseUrl}/swagger/json`)).json()).info.title).toBe('run-dat-sheesh manager API')
  })

  it('answers unknown /v1, /swagger and other routes with 404 {message: "Not Found"}', async () => {
    for (const url of ['/v1/nothing', '/swagger-nothing', '/nothing']) {
      const r = await mgr.request('GET', url)
      expect(r.status).toBe(404)
      expect(r.body.message).toBe('Not Found')
    }
  })
})

describe('§1.2 POST /v1/vms', () => {
  it('answered 201 with the original VmPublic fields and peerLinks []', async () => {
    const r = await mgr.request('GET', `/v1/vms/${vm}`)
    expect(r.body).toMatchObject({ id: vm, state: 'RUNNING', cpu: 1, memMb: 256, outboundInternet: false, peerLinks: [] })
    for (const k of ['guestIp', 'createdAt', 'provisionMode', 'imageId']) expect(r.body).toHaveProperty(k)
    expect(r.body).not.toHaveProperty('someFutureField')
  })

  const bad: Array<[string, object, number, string | RegExp]> = [
    ['cpu over MAX_CPU', { cpu: 99, memMb: 256, allowIps: [] }, 400, 'Invalid cpu (maxCpu=4)'],
    ['cpu 0', { cpu: 0, memMb: 256, allowIps: [] }, 400, 'Invalid cpu (maxCpu=4)'],
    ['memMb over MAX_MEM_MB', { cpu: 1, memMb: 999999, allowIps: [] }, 400, 'Invalid memMb (maxMemMb=2048)'],
    ['diskSizeMb 0', { cpu: 1, memMb: 256, allowIps: [], diskSizeMb: 0 }, 400, 'Invalid diskSizeMb'],
    ['diskSizeMb over 1 TiB', { cpu: 1, memMb: 256, allowIps: [], diskSizeMb: 2_000_000 }, 400, 'diskSizeMb too large'],
    ['allowIps not an array', { cpu: 1, memMb: 256, allowIps: 'x' }, 400, /allowIps/],
    ['more allowIps than MAX_ALLOW_IPS', { cpu: 1, memMb: 256, allowIps: ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4'] }, 400, 'Too many allowIps (maxAllowIps=3)'],
    ['an empty allowIps entry', { cpu: 1, memMb: 256, allowIps: [''] }, 400, /^Invalid allowIps entry/],
    ['a missing required field', { cpu: 1, allowIps: [] }, 400, /memMb/],
    ['an unknown image', { cpu: 1, memMb: 256, allowIps: [], imageId: 'img-nope' }, 404, 'Image not found'],
    ['an unknown userOverlaySnapshotId', { cpu: 1, memMb: 256, allowIps: [], userOverlaySnapshotId: 'snap-00000000-0000-0000-0000-000000000000' }, 404, 'User overlay snapshot not found'],
    ['an unknown snapshotId (the deprecated alias)', { cpu: 1, memMb: 256, allowIps: [], snapshotId: 'snap-00000000-0000-0000-0000-000000000000' }, 404, 'User overlay snapshot not found'],
    // Deliberate difference (docs/compat.md): the entry is not echoed, it may hold a secret.
    ['a bad secretEnv entry', { cpu: 1, memMb: 256, allowIps: [], secretEnv: ['NOEQUALS'] }, 400, /^Invalid secretEnv entry at index 0 \(expected KEY=value/],
    ['a bad peerLinks alias', { cpu: 1, memMb: 256, allowIps: [], peerLinks: [{ alias: 'a b', vmId: 'x' }] }, 400, 'Invalid peerLinks alias'],
    ['duplicate peerLinks aliases', { cpu: 1, memMb: 256, allowIps: [], peerLinks: [{ alias: 'a', vmId: 'x' }, { alias: 'a', vmId: 'y' }] }, 400, 'peerLinks aliases must be unique'],
    ['a peerLinks target that does not exist', { cpu: 1, memMb: 256, allowIps: [], peerLinks: [{ alias: 'a', vmId: 'no-such-vm' }] }, 400, 'peerLinks target not found: no-such-vm'],
  ]
  for (const [what, body, status, message] of bad) {
    it(`refuses ${what} with ${status}`, async () => {
      const r = await mgr.request('POST', '/v1/vms', body)
      expect(r.status, JSON.stringify(r.body)).toBe(status)
      if (typeof message === 'string') expect(r.body.message).toBe(message)
      else expect(r.body.message).toMatch(message)
    })
  }

  it('lists VMs (array of VmPublic with peerLinks) and gets one', async () => {
    const list = await mgr.request('GET', '/v1/vms')
    expect(list.status).toBe(200)
    expect(list.body.find((v: { id: string }) => v.id === vm)).toMatchObject({ id: vm, peerLinks: [] })
  })
})

describe('§1.2 logs and exec history', () => {
  it('tails a VM log: firecracker.log by default names, {type, lines, truncated}; tail clamped to 1..1000; bad type 400', async () => {
    const r = await mgr.request('GET', `/v1/vms/${vm}/logs?type=firecracker.log&tail=0`)
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ type: 'firecracker.log', truncated: expect.any(Boolean) })
    expect(r.body.lines.length).toBeLessThanOrEqual(1)
    const bad = await mgr.request('GET', `/v1/vms/${vm}/logs?type=../../etc/passwd`)
    expect(bad).toMatchObject({ status: 400, body: { message: 'Invalid log type' } })
  })

  it('keeps exec history newest first with the original entry shape, filtered by type and limit', async () => {
    await exec('true')
    await exec('echo one')
    await runJs({ code: 'result.set(1)' })
    const all = await mgr.request('GET', `/v1/vms/${vm}/exec-logs?limit=2`)
    expect(all.status).toBe(200)
    expect(all.body.entries).toHaveLength(2)
    expect(all.body.hasMore).toBe(true)
    expect(all.body.entries[0]).toMatchObject({ type: 'run-js', input: { code: 'result.set(1)' }, result: { exitCode: 0, result: 1 } })
    for (const k of ['id', 'timestamp', 'durationMs']) expect(all.body.entries[0]).toHaveProperty(k)
    const onlyExec = await mgr.request('GET', `/v1/vms/${vm}/exec-logs?type=exec&limit=1`)
    expect(onlyExec.body.entries[0]).toMatchObject({ type: 'exec', input: { cmd: 'echo one' }, result: { stdout: 'one\n' } })
  })
})

describe('§1.2 exec', () => {
  it('runs {cmd} and answers {exitCode, stdout, stderr}', async () => {
    const r = await exec('echo out; echo err >&2; exit 4')
    expect(r).toMatchObject({ exitCode: 4, stdout: 'out\n', stderr: 'err\n' })
  })

  it('refuses a non-string cmd and a timeout over MAX_EXEC_TIMEOUT_MS with 400', async () => {
    expect((await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd: 5 })).status).toBe(400)
    const t = await mgr.request('POST', `/v1/vms/${vm}/exec`, { cmd: 'true', timeoutMs: 120_001 })
    expect(t).toMatchObject({ status: 400, body: { message: 'timeoutMs exceeds maxExecTimeoutMs=120000' } })
  })

  it('merges env with secretEnv, the secret winning', async () => {
    const r = await exec('echo "$PROVIDER_TOKEN $MINE"', { env: { PROVIDER_TOKEN: 'caller', MINE: 'mine' } })
    expect(r.stdout).toBe(`${SECRET} mine\n`)
  })

  it('times out with exitCode -1 and "Timeout exceeded" on stderr', async () => {
    const r = await exec('sleep 30', { timeoutMs: 1500 })
    expect(r.exitCode).toBe(-1)
    expect(r.stderr).toMatch(/Timeout exceeded$/)
  })
})

describe('§1.2 run-ts and run-js', () => {
  it('runs code and returns result; result.error makes the exit non-zero', async () => {
    expect((await runTs({ code: 'const n: number = 20; result.set({ n: n + 1 })' })).body).toMatchObject({ exitCode: 0, result: { n: 21 } })
    const e = await runTs({ code: "result.error({ name: 'Boom', message: 'no' })" })
    expect(e.body.exitCode).not.toBe(0)
    expect(e.body.error).toMatchObject({ name: 'Boom', message: 'no' })
    expect((await runJs({ code: 'result.set({ v: process.version.startsWith("v") })' })).body).toMatchObject({ exitCode: 0, result: { v: true } })
  })

  it('refuses neither code nor path, too long timeouts and bad env entries with 400', async () => {
    expect((await runTs({})).status).toBe(400)
    expect((await runTs({ code: '1', timeoutMs: 120_001 })).body.message).toBe('timeoutMs exceeds maxRunTsTimeoutMs=120000')
    expect((await runJs({ code: '1', timeoutMs: 120_001 })).body.message).toBe('timeoutMs exceeds maxRunTsTimeoutMs=120000')
    expect((await runTs({ code: '1', env: ['NOEQUALS'] })).body.message).toBe('Invalid env entry (expected KEY=value): NOEQUALS')
    expect((await runTs({ code: '1', env: ['1X=2'] })).body.message).toBe('Invalid env var name: 1X')
  })

  it('runs a module by /workspace path (cwd is its directory) and refuses /home/user paths with 400', async () => {
    await exec('mkdir -p /workspace/mods && printf %s "result.set(Deno.cwd())" > /workspace/mods/cwd.ts && printf %s "result.set(process.cwd())" > /workspace/mods/cwd.mjs')
    expect((await runTs({ path: '/workspace/mods/cwd.ts' })).body.result).toBe('/workspace/mods')
    expect((await runTs({ path: 'mods/cwd.ts' })).body.result).toBe('/workspace/mods')
    expect((await runJs({ path: '/workspace/mods/cwd.mjs' })).body.result).toBe('/workspace/mods')
    for (const p of ['/home/user/mods/cwd.ts', '/etc/hostname', '/workspace/../etc/hostname']) {
      const r = await runTs({ path: p })
      expect(r.status, p).toBe(400)
      expect(r.body.code).toBe('path_not_allowed')
    }
    // The policy comes before existence: a refused path that does not exist is still a 400 path_not_allowed.
    expect((await runJs({ path: '/home/user/nope.mjs' })).body.code).toBe('path_not_allowed')
    expect((await runJs({ path: '/workspace/nope.mjs' })).status).toBe(400)
  })

  it('gives Deno exactly the original files: /workspace /tmp /var/tmp and the resolver and CA files, never /home/user', async () => {
    const code = `
      const tryIt = (f: () => unknown) => { try { f(); return 'ok' } catch (e) { return (e as Error).name } };
      result.set({
        hosts: tryIt(() => Deno.readTextFileSync('/etc/hosts')),
        ca: tryIt(() => Deno.readFileSync('/etc/ssl/certs/ca-certificates.crt')),
        home: tryIt(() => Deno.readDirSync('/home/user')),
        passwd: tryIt(() => Deno.readTextFileSync('/etc/passwd')),
        varTmp: tryIt(() => Deno.writeTextFileSync('/var/tmp/rds-compat', 'x')),
        tmp: tryIt(() => Deno.writeTextFileSync('/tmp/rds-compat', 'x')),
        ws: tryIt(() => Deno.writeTextFileSync('/workspace/rds-compat', 'x')),
        // This VM has secretEnv, merged into the env list as in the original: only listed keys are readable.
        unlisted: tryIt(() => Deno.env.get('HOME')),
        secret: Deno.env.get('PROVIDER_TOKEN') === '${SECRET}',
      })`
    expect((await runTs({ code })).body.result).toEqual({ hosts: 'ok', ca: 'ok', home: 'NotCapable', passwd: 'NotCapable', varTmp: 'ok', tmp: 'ok', ws: 'ok', unlisted: 'NotCapable', secret: true })
    const listed = await runTs({ code: "let h; try { h = Deno.env.get('HOME') } catch (e) { h = e.name }; result.set([Deno.env.get('A'), h])", env: ['A=1'] })
    expect(listed.body.result).toEqual(['1', 'NotCapable'])
  })

  it('gives Deno --allow-net exactly when the VM has egress, allowDomains alone included', async () => {
    const net = async () => (await runTs({ code: "result.set((await Deno.permissions.query({ name: 'net', host: 'example.test' })).state)" })).body.result
    expect(await net()).not.toBe('granted')
    expect((await mgr.request('PATCH', `/v1/vms/${vm}/network`, { allowDomains: ['example.test'] })).status).toBe(200)
    expect(await net()).toBe('granted')
    expect((await mgr.request('PATCH', `/v1/vms/${vm}/network`, { allowDomains: [] })).status).toBe(200)
    expect(await net()).not.toBe('granted')
  })
})

describe('§1.2 files', () => {
  it('uploads to dest (absolute or relative to /workspace) with gzip, x-gzip and octet-stream bodies: 204', async () => {
    for (const [dest, type] of [['/workspace/in', 'application/gzip'], ['in2', 'application/x-gzip'], ['/workspace', 'application/octet-stream']] as const) {
      const r = await mgr.request('POST', `/v1/vms/${vm}/files/upload?dest=${encodeURIComponent(dest)}`, tarGz({ [`f-${dest.replace(/\W/g, '')}.txt`]: 'x' }), { 'content-type': type })
      expect(r.status, `${dest} ${type} ${JSON.stringify(r.body)}`).toBe(204)
    }
    expect((await exec('ls /workspace/in /workspace/in2 /workspace/f-workspace.txt')).exitCode).toBe(0)
  })

  it('refuses a missing dest, a /home/user or /tmp dest with 400, before existence', async () => {
    const body = tarGz({ 'a.txt': 'a' })
    const h = { 'content-type': 'application/gzip' }
    expect((await mgr.request('POST', `/v1/vms/${vm}/files/upload`, body, h)).body.message).toBe('dest is required')
    for (const dest of ['/home/user/x', '/tmp/x', '/workspace/../tmp', '../x']) {
      const r = await mgr.request('POST', `/v1/vms/${vm}/files/upload?dest=${encodeURIComponent(dest)}`, body, h)
      expect(r.status, dest).toBe(400)
      expect(r.body.code, dest).toBe('path_not_allowed')
    }
  })

  it('answers an upload over 10 MiB with 413 "Body too large", declared or streamed, and stays up', async () => {
    const big = new Uint8Array(10 * MiB + 1)
    const declared = await mgr.request('POST', `/v1/vms/${vm}/files/upload?dest=big`, big, { 'content-type': 'application/gzip' })
    expect(declared.status).toBe(413)
    expect(declared.body).toMatchObject({ code: 'payload_too_large', message: 'Body too large', limitBytes: 10 * MiB })
    // Chunked, so the limit is only found while the body flows.
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 11; i++) c.enqueue(new Uint8Array(MiB))
        c.close()
      },
    })
    const r = await mgr.fetch(`/v1/vms/${vm}/files/upload?dest=big2`, { method: 'POST', headers: { 'x-api-key': mgr.apiKey, 'content-type': 'application/gzip' }, body: stream, duplex: 'half' } as RequestInit)
    expect(r.status).toBe(413)
    expect(await r.json()).toMatchObject({ code: 'payload_too_large', message: 'Body too large' })
    expect((await exec('ls /workspace/big /workspace/big2 2>&1; true')).stdout).toMatch(/No such file/)
  })

  it('downloads a directory as ./-rooted tar.gz and a file by its name; missing or refused paths are 400', async () => {
    const dir = await mgr.request('GET', `/v1/vms/${vm}/files/download?path=/workspace/in`)
    expect(dir.status).toBe(200)
    expect(dir.headers.get('content-type')).toContain('application/gzip')
    expect(entries(dir.body)).toContain('./f-workspacein.txt')
    const file = await mgr.request('GET', `/v1/vms/${vm}/files/download?path=in/f-workspacein.txt`)
    expect(entries(file.body)).toEqual(['f-workspacein.txt'])
    expect((await mgr.request('GET', `/v1/vms/${vm}/files/download`)).body.message).toBe('path is required')
    for (const p of ['/home/user/in', '/etc/passwd', '/workspace/nope']) expect((await mgr.request('GET', `/v1/vms/${vm}/files/download?path=${encodeURIComponent(p)}`)).status, p).toBe(400)
  })
})

describe('§3 the sandbox', () => {
  it('runs as uid 1000 in /workspace, which is /home/user, with the original base environment', async () => {
    const r = await exec('id -u; pwd; echo "$HOME|$USER|$LOGNAME|$LANG|$TMPDIR"; echo "$PATH"; [ /workspace -ef /home/user ] && echo same')
    const [uid, pwd, env, pathVar, same] = r.stdout.trim().split('\n')
    expect([uid, pwd, env, same]).toEqual(['1000', '/workspace', '/home/user|user|user|C.UTF-8|/tmp', 'same'])
    expect(pathVar!.split(':')).toEqual(expect.arrayContaining(['/usr/local/bin', '/usr/bin', '/usr/sbin', '/bin', '/sbin']))
  })

  it('leaves /workspace to the user on a VM without peer links (no empty /workspace/peers, a deliberate difference)', async () => {
    expect((await exec('test -e /workspace/peers; echo $?')).stdout).toBe('1\n')
  })

  it('has a world-writable sticky /var/tmp', async () => {
    const r = await exec('stat -c %a /var/tmp && echo x > /var/tmp/user-file && cat /var/tmp/user-file')
    expect(r.stdout).toBe('1777\nx\n')
  })

  it('strips ANSI escapes from Deno output, not from Node output', async () => {
    const esc = '\\u001b[31mred\\u001b[0m'
    expect((await runTs({ code: `console.log("${esc}")` })).body.stdout).toBe('red\n')
    expect((await runJs({ code: `console.log("${esc}")` })).body.stdout).toBe('\u001b[31mred\u001b[0m\n')
  })
})

describe('§1.2 snapshots and §1.3 snapshot listing', () => {
  it('snapshots a running VM (201, kind user_overlay) and lists by scope (unknown scope = user)', async () => {
    const s = await mgr.request('POST', `/v1/vms/${vm}/snapshots`)
    expect(s.status).toBe(201)
    expect(s.body).toMatchObject({ kind: 'user_overlay', cpu: 1, memMb: 256, sourceVmId: vm, hasOverlay: true })
    const user = await mgr.request('GET', '/v1/snapshots?scope=bogus')
    expect(user.body.map((x: { id: string }) => x.id)).toContain(s.body.id)
    expect((await mgr.request('GET', '/v1/snapshots?scope=internal')).body.every((x: { internal: boolean }) => x.internal)).toBe(true)
    expect((await mgr.request('GET', '/v1/snapshots?scope=all')).body.map((x: { id: string }) => x.id)).toContain(s.body.id)
    expect((await mgr.request('DELETE', `/v1/snapshots/${s.body.id}`)).status).toBe(204)
  })
})

describe('§1.3 images', () => {
  let img: string

  it('lists images with the original fields', async () => {
    const r = await mgr.request('GET', '/v1/images')
    const def = r.body.find((i: { isDefault: boolean }) => i.isDefault)
    for (const k of ['id', 'name', 'description', 'createdAt', 'kernelFilename', 'rootfsFilename', 'baseRootfsBytes', 'kernelUploadedAt', 'rootfsUploadedAt', 'seedSnapshotId', 'seedStatus', 'seedUpdatedAt', 'seedError', 'isDefault', 'hasKernel', 'hasRootfs']) {
      expect(def, k).toHaveProperty(k)
    }
    expect(def).toMatchObject({ hasKernel: true, hasRootfs: true })
  })

  it('creates an image record (201, img-<uuid>) and refuses blank name/description', async () => {
    expect((await mgr.request('POST', '/v1/images', { name: ' ', description: 'd' })).body.message).toBe('name and description are required')
    const r = await mgr.request('POST', '/v1/images', { name: 'compat', description: 'uploaded by the compat suite' })
    expect(r.status).toBe(201)
    expect(r.body.id).toMatch(/^img-[0-9a-f-]{36}$/)
    img = r.body.id
  })

  it('takes kernel and rootfs uploads (204) and refuses a VM on an image without them', async () => {
    const incomplete = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], imageId: img })
    expect(incomplete).toMatchObject({ status: 400, body: { message: 'Image is missing kernel or rootfs' } })
    // The real kernel (its drivers are looked at below); a small stand-in rootfs is enough here.
    const kernel = path.join(CACHE_DIR, 'images', recipeHash(), 'vmlinux')
    const put = async (part: string, body: BodyInit) =>
      (await mgr.fetch(`/v1/images/${img}/${part}`, { method: 'PUT', headers: { 'x-api-key': mgr.apiKey, 'content-type': 'application/octet-stream' }, body, duplex: 'half' } as RequestInit)).status
    expect(await put('kernel', fs.createReadStream(kernel) as unknown as BodyInit)).toBe(204)
    expect(await put('rootfs', new Uint8Array(MiB))).toBe(204)
    const listed = (await mgr.request('GET', '/v1/images')).body.find((i: { id: string }) => i.id === img)
    expect(listed).toMatchObject({ hasKernel: true, hasRootfs: true, kernelFilename: 'vmlinux', rootfsFilename: 'rootfs.ext4', baseRootfsBytes: MiB })
  })

  it('refuses, with a clear 400 and no boot, a kernel + rootfs image whose kernel cannot boot without an initrd', async () => {
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], imageId: img })
    expect(r.status).toBe(400)
    expect(r.body.code).toBe('image_needs_initrd')
    // Debian's cloud kernel has its virtio drivers as modules.
    expect(r.body.missingDrivers).toEqual(expect.arrayContaining(['virtio_blk', 'virtio_mmio']))
    expect(r.body.message).toContain('virtio_blk')
  })

  it('sets the default (204; 404 Image not found) and deletes (204, then 404)', async () => {
    expect((await mgr.request('POST', '/v1/images/img-nope/set-default')).body.message).toBe('Image not found')
    expect((await mgr.request('DELETE', `/v1/images/${img}`)).status).toBe(204)
    expect((await mgr.request('DELETE', `/v1/images/${img}`)).body.message).toBe('Image not found')
  })

  it('refuses to delete an image a VM uses: 409 Image is in use by an active VM', async () => {
    const def = (await mgr.request('GET', `/v1/vms/${vm}`)).body.imageId
    expect((await mgr.request('DELETE', `/v1/images/${def}`))).toMatchObject({ status: 409, body: { message: 'Image is in use by an active VM' } })
  })
})

describe('§1.2 peers and §2 provider/consumer', () => {
  let consumer: string
  const manifest = {
    sdk: { name: 'compat-sdk', description: 'says hi' },
    modules: [{ path: 'sdk/hi.ts', exports: [{ name: 'hi', description: 'greets', params: [], returns: { description: 'greeting', schema: { type: 'string' } }, examples: [{ description: 'call', code: 'await hi()' }] }] }],
  }

  beforeAll(async () => {
    await exec(`mkdir -p /workspace/sdk /workspace/.rds-peer && printf %s 'export function hi() { return "hi " + (Deno.env.get("PROVIDER_TOKEN") ? "with" : "without") + " token" }' > /workspace/sdk/hi.ts && printf %s '${JSON.stringify(manifest)}' > /workspace/.rds-peer/manifest.json`)
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], peerLinks: [{ alias: 'p', vmId: vm }] })
    if (r.status !== 201) throw new Error(`consumer create failed: ${JSON.stringify(r.body)}`)
    consumer = r.body.id
    expect(r.body.peerLinks).toEqual([{ alias: 'p', vmId: vm, sourceMode: 'hidden' }])
  })

  it('answers the quota with 429 VM quota exceeded (maxVms=N)', async () => {
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    expect(r).toMatchObject({ status: 429, body: { message: 'VM quota exceeded (maxVms=2)' } })
  })

  it('lets consumer code call the provider while the provider\'s secret stays there', async () => {
    const r = await mgr.request('POST', `/v1/vms/${consumer}/run-ts`, { code: 'import { hi } from "file:///workspace/peers/p/proxy/sdk/hi.ts"; result.set([await hi(), Deno.env.get("PROVIDER_TOKEN") ?? null])' })
    expect(r.body.result).toEqual(['hi with token', null])
    // No env list and no secretEnv: a bare --allow-env, so an unset name reads as undefined, not an error.
    const env = await mgr.request('POST', `/v1/vms/${consumer}/run-ts`, { code: "result.set([Deno.env.get('RDS_NOT_SET') ?? 'undefined', Deno.env.get('DENO_DIR')])" })
    expect(env.body.result).toEqual(['undefined', '/workspace/.deno'])
    const index = await mgr.request('POST', `/v1/vms/${consumer}/exec`, { cmd: 'cat /workspace/peers/index.json' })
    expect(JSON.parse(index.body.stdout).peers[0]).toMatchObject({ alias: 'p', sdkName: 'compat-sdk', summary: 'says hi', manifestPath: '/workspace/peers/p/manifest.json', sourceMode: 'hidden' })
  })

  it('answers POST peers/sync and PATCH peers/:alias with 204', async () => {
    // Whole replies, so a failure shows the error body.
    expect(await mgr.request('POST', `/v1/vms/${consumer}/peers/sync`)).toMatchObject({ status: 204 })
    expect(await mgr.request('PATCH', `/v1/vms/${consumer}/peers/p`, { sourceMode: 'mounted' })).toMatchObject({ status: 204 })
    expect((await mgr.request('GET', `/v1/vms/${consumer}`)).body.peerLinks).toEqual([{ alias: 'p', vmId: vm, sourceMode: 'mounted' }])
  })

  it('refuses PATCH of a malformed alias (400), an unknown alias (404) and a bad body (400) with the original sentences', async () => {
    expect((await mgr.request('PATCH', `/v1/vms/${consumer}/peers/bad!alias`, { sourceMode: 'hidden' })).body.message).toBe('Invalid peerLinks alias')
    expect((await mgr.request('PATCH', `/v1/vms/${consumer}/peers/zzz`, { sourceMode: 'hidden' }))).toMatchObject({ status: 404, body: { message: `Peer alias zzz not found for VM ${consumer}` } })
    expect((await mgr.request('PATCH', `/v1/vms/${consumer}/peers/p`, { sourceMode: 'sideways' })).status).toBe(400)
  })

  it('refuses a provider without a manifest with the original message', async () => {
    expect((await mgr.request('DELETE', `/v1/vms/${consumer}`)).status).toBe(204)
    await exec('rm /workspace/.rds-peer/manifest.json')
    const missing = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], peerLinks: [{ alias: 'x', vmId: vm }] })
    expect(missing).toMatchObject({ status: 400, body: { message: 'Peer alias x: missing provider manifest at /workspace/.rds-peer/manifest.json' } })
  })
})

describe('§1.2 lifecycle (last: changes the shared VM)', () => {
  it('refuses start of a RUNNING VM and stop of a STOPPED one with the original 409 sentences', async () => {
    expect((await mgr.request('POST', `/v1/vms/${vm}/start`))).toMatchObject({ status: 409, body: { message: 'VM must be STOPPED to start (state=RUNNING)' } })
    expect((await mgr.request('POST', `/v1/vms/${vm}/stop`)).status).toBe(204)
    expect((await mgr.request('POST', `/v1/vms/${vm}/stop`))).toMatchObject({ status: 409, body: { message: 'VM must be RUNNING to stop (state=STOPPED)' } })
    expect((await mgr.request('POST', `/v1/vms/${vm}/snapshots`))).toMatchObject({ status: 409, body: { message: 'VM must be RUNNING to snapshot (state=STOPPED)' } })
    expect((await mgr.request('POST', `/v1/vms/${vm}/start`)).status).toBe(204)
    expect((await exec('cat /workspace/in2/*')).stdout).toBe('x')
  })

  it('deletes with 204, then 404', async () => {
    expect((await mgr.request('DELETE', `/v1/vms/${vm}`)).status).toBe(204)
    expect((await mgr.request('DELETE', `/v1/vms/${vm}`)).status).toBe(404)
    expect((await mgr.request('GET', '/v1/vms')).body.some((v: { id: string }) => v.id === vm)).toBe(false)
  })
})

describe('environment (§5.9) on managers of their own', () => {
  it('answers a create with no default image with the original sentence, and secretEnv without VM_SECRET_KEY with 500', async () => {
    const bare = new ManagerProcess({ RDS_SKIP_DEFAULT_IMAGE: 'true' })
    try {
      await bare.start()
      const r = await bare.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
      expect(r).toMatchObject({ status: 400, body: { message: 'No default image configured; upload an image and set it as default' } })
      const s = await bare.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], secretEnv: ['A=b'] })
      expect(s).toMatchObject({ status: 500, body: { message: 'VM_SECRET_KEY is required for peer secret env support' } })
    } finally {
      await bare.cleanup()
    }
  })

  it('registers KERNEL_PATH + BASE_ROOTFS_PATH (+ INITRD_PATH) as the default image instead of building one', async () => {
    const dir = path.join(CACHE_DIR, 'images', recipeHash())
    const builtin = new ManagerProcess({ KERNEL_PATH: path.join(dir, 'vmlinux'), BASE_ROOTFS_PATH: path.join(dir, 'rootfs.ext4'), INITRD_PATH: path.join(dir, 'initrd') })
    try {
      await builtin.start()
      const images = (await builtin.request('GET', '/v1/images')).body
      expect(images).toHaveLength(1)
      expect(images[0]).toMatchObject({ isDefault: true, name: 'built-in (KERNEL_PATH, BASE_ROOTFS_PATH)', hasKernel: true, hasRootfs: true })
      const r = await builtin.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
      expect(r.status, JSON.stringify(r.body)).toBe(201)
      expect((await builtin.request('POST', `/v1/vms/${r.body.id}/exec`, { cmd: 'echo booted' })).body.stdout).toBe('booted\n')
      await builtin.request('DELETE', `/v1/vms/${r.body.id}`)
      // Restarted with the same files: nothing new is registered.
      await builtin.stop()
      await builtin.start()
      expect((await builtin.request('GET', '/v1/images')).body).toHaveLength(1)
    } finally {
      await builtin.cleanup()
    }
  })
})
