// Real VMs through the real HTTP API of a real manager process (QEMU, TCG here). The exec, run
// and files tests run twice, on a VM restored from the image seed (what a plain create gets in
// production) and on a cold-booted one: what user code sees must not depend on how its VM came
// up. They share the suite's manager (harness/shared-manager.ts); the lifecycle tests restart a
// manager, so they have their own.
import { execFileSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import zlib from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ManagerProcess, qemuProcessesOf, type ManagerClient } from '../harness/manager-process.ts'
import { sharedManager, VM_ORIGINS } from '../harness/shared-manager.ts'
import { tarGz as tarGzBuffer } from '../harness/archives.ts'

const SECRET = 'tok-9f8e7d6c5b4a'

const tarGz = (files: Record<string, string>) => new Uint8Array(tarGzBuffer(files))

const untarList = (gz: Uint8Array): string => execFileSync('tar', ['-tzvf', '-'], { input: gz }).toString()

let api: ManagerClient

beforeAll(async () => {
  api = await sharedManager()
})

describe.each(VM_ORIGINS)('a running VM, $origin', ({ shape, provisionMode }) => {
  let vmId: string

  beforeAll(async () => {
    const r = await api.request('POST', '/v1/vms', { ...shape, allowIps: [], secretEnv: [`API_TOKEN=${SECRET}`, 'SHADOWED=from-secret'] })
    if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
    vmId = r.body.id
  })

  afterAll(async () => {
    if (vmId) await api.request('DELETE', `/v1/vms/${vmId}`)
  })

  it('is listed as RUNNING with its image and boot timing', async () => {
    const r = await api.request('GET', `/v1/vms/${vmId}`)
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ id: vmId, state: 'RUNNING', ...shape, provisionMode, peerLinks: [] })
    expect(r.body.bootMs).toBeGreaterThan(0)
    const list = await api.request('GET', '/v1/vms')
    expect(list.body.map((v: { id: string }) => v.id)).toContain(vmId)
  })

  it('runs commands as uid 1000 in /workspace with a login-like env and no extra groups', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'id -u; id -g; id -G; pwd; echo $HOME $USER; echo hello >&2; exit 3' })
    expect(r.status).toBe(200)
    expect(r.body.exitCode).toBe(3)
    expect(r.body.stdout).toBe('1000\n1000\n1000\n/workspace\n/home/user user\n')
    expect(r.body.stderr).toBe('hello\n')
    expect(r.body.timedOut).toBe(false)
  })

  it('passes env and cwd, and refuses a cwd outside /workspace', async () => {
    await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'mkdir -p /workspace/sub' })
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo $GREETING; pwd', cwd: '/workspace/sub', env: { GREETING: 'hi there' } })
    expect(r.body).toMatchObject({ exitCode: 0, stdout: 'hi there\n/workspace/sub\n' })
    const bad = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'pwd', cwd: '/etc' })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('path_not_allowed')
  })

  it('kills the whole process tree on timeout, background children included', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: '(setsid sleep 300 &); sleep 300 & echo started; sleep 300', timeoutMs: 1500 })
    expect(r.body).toMatchObject({ exitCode: -1, timedOut: true, stdout: 'started\n' })
    expect(r.body.stderr).toContain('Timeout exceeded')
    const ps = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'ps -eo user,args | grep "[s]leep 300" | wc -l' })
    expect(ps.body.stdout.trim()).toBe('0')
  })

  it('flags truncated output instead of dropping it silently', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'head -c 3000000 /dev/zero | tr "\\0" a' })
    expect(r.body.stdoutTruncated).toBe(true)
    expect(r.body.stdout.length).toBeLessThanOrEqual(1024 * 1024)
    expect(r.body.stdout.length).toBeGreaterThan(1000)
  })

  it('leaves user code to the OOM killer (the agent\'s own -1000 is checked as guest root in hostile-guest.test.ts)', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'cat /proc/self/oom_score_adj' })
    expect(r.body.stdout).toBe('0\n')
  })

  it('sees only its own processes in /proc (hidepid=2): no root process, not even PID 1', async () => {
    // Owners of every process directory user code can list; the agent and init run as root.
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'stat -c %u /proc/[0-9]* | sort -u; test -e /proc/1 && echo PID1-LISTED; cat /proc/1/cmdline >/dev/null 2>&1 && echo PID1-READ; ps -eo user= | sort -u; echo done' })
    expect(r.body.stdout).toBe('1000\nuser\ndone\n')
  })

  it('cannot read the agent, open its ports, run the port reader or become root', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/exec`, {
      cmd: [
        'cat /opt/rds/agent/agent.js >/dev/null 2>&1 && echo READ',
        'ls /opt/rds/agent >/dev/null 2>&1 && echo LISTED',
        // Denied by its mode, not merely busy because the agent holds it.
        'for d in /dev/vport*; do ( : <> "$d" ) 2>&1 | grep -q "Permission denied" || echo "PORT-NOT-DENIED $d"; done',
        'ls /dev/vport* >/dev/null 2>&1 || echo NO-PORTS',
        'test -r /usr/lib/rds/rds-portpipe && echo READER-READABLE',
        'test -x /usr/lib/rds/rds-portpipe && echo READER-RUNNABLE',
        'su -c true root </dev/null >/dev/null 2>&1 && echo ROOT',
        'echo done',
      ].join('; '),
    })
    expect(r.body.stdout).toBe('done\n')
  })

  it('runs TypeScript with Deno and returns any JSON value through result.set', async () => {
    for (const [code, expected] of [
      ['result.set(42)', 42],
      ['result.set([1, "two", null])', [1, 'two', null]],
      ['result.set({ a: { b: 1 } })', { a: { b: 1 } }],
      ['const n: number = 2; result.set(`n=${n}`)', 'n=2'],
    ] as const) {
      const r = await api.request('POST', `/v1/vms/${vmId}/run-ts`, { code })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.exitCode, r.body.stderr).toBe(0)
      expect(r.body.result).toEqual(expected)
    }
  })

  it('run-ts: uncaught errors come back as error with a non-zero exit, env keys are scoped', async () => {
    const thrown = await api.request('POST', `/v1/vms/${vmId}/run-ts`, { code: 'throw new Error("boom")' })
    expect(thrown.body.exitCode).not.toBe(0)
    expect(thrown.body.error).toMatchObject({ name: 'Error', message: 'boom' })
    const env = await api.request('POST', `/v1/vms/${vmId}/run-ts`, { code: 'result.set([Deno.env.get("A"), (() => { try { return Deno.env.get("HOME") } catch { return "denied" } })()])', env: ['A=1'] })
    expect(env.body.result).toEqual(['1', 'denied'])
    const bad = await api.request('POST', `/v1/vms/${vmId}/run-ts`, { code: '1', env: ['1BAD=x'] })
    expect(bad.status).toBe(400)
    expect(bad.body.message).toBe('Invalid env var name: 1BAD')
  })

  it('runs JavaScript with Node, by code and by path', async () => {
    const r = await api.request('POST', `/v1/vms/${vmId}/run-js`, { code: 'result.set({ v: process.versions.node.split(".")[0], env: process.env.X })', env: ['X=y'] })
    expect(r.body.exitCode, r.body.stderr).toBe(0)
    expect(r.body.result).toEqual({ v: '24', env: 'y' })
    await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo "result.set(process.argv.slice(2))" > /workspace/m.mjs' })
    const p = await api.request('POST', `/v1/vms/${vmId}/run-js`, { path: '/workspace/m.mjs', args: ['a', 'b'] })
    expect(p.body.result).toEqual(['a', 'b'])
    const err = await api.request('POST', `/v1/vms/${vmId}/run-js`, { code: 'result.error("nope")' })
    expect(err.body.exitCode).not.toBe(0)
    expect(err.body.error).toBeDefined()
  })

  it('uploads a tar.gz and downloads it back', async () => {
    const up = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/up`, tarGz({ 'a.txt': 'alpha', 'd/b.txt': 'beta' }), { 'content-type': 'application/gzip' })
    expect(up.status, JSON.stringify(up.body)).toBe(204)
    const cat = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'cat /workspace/up/a.txt /workspace/up/d/b.txt; stat -c %u /workspace/up/a.txt' })
    expect(cat.body.stdout).toBe('alphabeta1000\n')
    const down = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/up`)
    expect(down.status).toBe(200)
    expect(down.headers.get('content-type')).toContain('application/gzip')
    const listing = untarList(down.body)
    expect(listing).toContain('a.txt')
    expect(listing).toContain('d/b.txt')
  })

  it('takes plain tar, gives it with format=tar, keeps incompressible tar.gz intact, and refuses a hostile plain tar before writing', async () => {
    const plain = new Uint8Array(zlib.gunzipSync(tarGzBuffer({ 'p.txt': 'plain', 'q/r.txt': 'deep' })))
    const up = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/plain`, plain, { 'content-type': 'application/x-tar' })
    expect(up.status, JSON.stringify(up.body)).toBe(204)
    const cat = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'cat /workspace/plain/p.txt /workspace/plain/q/r.txt; stat -c %u /workspace/plain/q/r.txt' })
    expect(cat.body.stdout).toBe('plaindeep1000\n')
    const down = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/plain&format=tar`)
    expect(down.status).toBe(200)
    expect(down.headers.get('content-type')).toContain('application/x-tar')
    expect(execFileSync('tar', ['-tvf', '-'], { input: down.body }).toString()).toContain('q/r.txt')

    // Random bytes are stored rather than deflated in the default tar.gz: still gzip, same bytes.
    const sum = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'head -c 1048576 /dev/urandom > /workspace/noise && sha256sum < /workspace/noise' })
    const noise = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/noise`)
    expect(noise.headers.get('content-type')).toContain('application/gzip')
    const bytes = execFileSync('tar', ['-xzOf', '-', 'noise'], { input: noise.body, maxBuffer: 1 << 22 })
    expect(`${crypto.createHash('sha256').update(bytes).digest('hex')}  -\n`).toBe(sum.body.stdout)

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-evil-'))
    try {
      fs.writeFileSync(path.join(dir, 'fine.txt'), 'x')
      fs.symlinkSync('/etc', path.join(dir, 'ln'))
      const evil = new Uint8Array(execFileSync('tar', ['-cf', '-', '-C', dir, 'fine.txt', 'ln']))
      const r = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/evil-plain`, evil, { 'content-type': 'application/x-tar' })
      expect(r.status).toBe(400)
      expect(r.body.code).toBe('archive_invalid')
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
    const after = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'test -e /workspace/evil-plain && echo written || echo nothing' })
    expect(after.body.stdout).toBe('nothing\n')
  })

  it('refuses paths and archives that escape, before writing anything', async () => {
    await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'ln -sfn /etc /workspace/evil' })
    const viaLink = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/evil`, tarGz({ 'x.txt': 'x' }), { 'content-type': 'application/gzip' })
    expect(viaLink.status).toBe(400)
    expect(viaLink.body.code).toBe('path_not_allowed')
    const outside = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/etc/shadow`)
    expect(outside.status).toBe(400)
    const dotdot = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/../etc/passwd`)
    expect(dotdot.status).toBe(400)
    const missing = await api.request('GET', `/v1/vms/${vmId}/files/download?path=/workspace/nope`)
    // 400 as in the original; the code says what it was.
    expect(missing.status).toBe(400)
    expect(missing.body.code).toBe('path_not_found')
    const garbage = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace`, new Uint8Array([1, 2, 3]), { 'content-type': 'application/gzip' })
    expect(garbage.status).toBe(400)
    expect(garbage.body.code).toBe('archive_invalid')
    // A gzip stream cut short: inflated on the host, refused with zlib's reason, nothing written.
    const whole = tarGz({ 'cut.txt': 'x'.repeat(100_000) })
    const cut = await api.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/cut`, whole.subarray(0, whole.length - 20), { 'content-type': 'application/gzip' })
    expect(cut.status).toBe(400)
    expect(cut.body).toMatchObject({ code: 'archive_invalid', message: expect.stringMatching(/^unreadable tar\.gz archive: .*end of file/) })
    expect((await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'test -e /workspace/cut && echo written || echo nothing' })).body.stdout).toBe('nothing\n')
    const noDest = await api.request('POST', `/v1/vms/${vmId}/files/upload`, tarGz({ 'x.txt': 'x' }), { 'content-type': 'application/gzip' })
    expect(noDest.status).toBe(400)
    expect(noDest.body.message).toBe('dest is required')
  })

  it('serves 50 parallel execs on one VM', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: `echo ${i}` })))
    results.forEach((r, i) => expect(r.body.stdout, JSON.stringify(r.body)).toBe(`${i}\n`))
  })

  it('gives secretEnv to every exec and run, over the caller\'s env, and never shows or stores it in clear', async () => {
    const e = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo "$API_TOKEN $SHADOWED"', env: { SHADOWED: 'from-caller' } })
    expect(e.body.stdout).toBe(`${SECRET} from-secret\n`)
    const ts = await api.request('POST', `/v1/vms/${vmId}/run-ts`, { code: 'result.set(Deno.env.get("API_TOKEN"))' })
    expect(ts.body.result).toBe(SECRET)
    const js = await api.request('POST', `/v1/vms/${vmId}/run-js`, { code: 'result.set(process.env.API_TOKEN)', env: ['API_TOKEN=caller'] })
    expect(js.body.result).toBe(SECRET)
    // Not in any API answer about the VM, not in the history, not in the database files.
    for (const url of [`/v1/vms/${vmId}`, '/v1/vms', `/v1/vms/${vmId}/network`, `/v1/vms/${vmId}/exec-logs?limit=10`]) {
      const r = await api.request('GET', url)
      expect(JSON.stringify(r.body), url).not.toContain(SECRET)
    }
    const h = await api.request('GET', `/v1/vms/${vmId}/exec-logs?limit=3`)
    expect(JSON.stringify(h.body)).toContain('[secret API_TOKEN]')
    for (const f of fs.readdirSync(api.storageRoot).filter((n) => n.startsWith('manager.db'))) {
      expect(fs.readFileSync(path.join(api.storageRoot, f)).includes(SECRET), f).toBe(false)
    }
    expect(api.output).not.toContain(SECRET)
  })

  it('keeps logs and an exec history without env values', async () => {
    await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd: 'echo logged', env: { SECRET_TOKEN: 'hunter2' } })
    const h = await api.request('GET', `/v1/vms/${vmId}/exec-logs?limit=5&type=exec`)
    expect(h.status).toBe(200)
    expect(h.body.entries[0]).toMatchObject({ type: 'exec', input: { cmd: 'echo logged', env: ['SECRET_TOKEN'] }, result: { exitCode: 0, stdout: 'logged\n' } })
    expect(JSON.stringify(h.body)).not.toContain('hunter2')
    const logs = await api.request('GET', `/v1/vms/${vmId}/logs?tail=50`)
    expect(logs.status).toBe(200)
    expect(logs.body.type).toBe('console.log')
    // The guest init's boot messages are on the console of a booted VM; a restored one's console
    // log starts at its restore (the boot it continues happened in the seed VM).
    if (provisionMode === 'boot') expect(logs.body.lines.join('\n')).toContain('[init]')
  })
})


describe('metrics', () => {
  const scrape = async () => (await api.fetch('/metrics', { headers: { 'x-api-key': api.apiKey } })).text()
  /** One sample of the text format, 0 when the series is not there yet. */
  const sample = (text: string, series: string) => Number(text.split('\n').find((l) => l.startsWith(`${series} `))?.slice(series.length + 1) ?? 0)
  const running = 'rds_vms{state="RUNNING",purpose="user"}'

  it('follow a real VM as it comes, runs a command and goes (rds_vms, rds_vm_create_seconds, rds_exec_seconds)', async () => {
    const before = await scrape()
    const r = await api.request('POST', '/v1/vms', { ...VM_ORIGINS[0].shape, allowIps: [] })
    expect(r.status).toBe(201)
    const { id, provisionMode } = r.body
    try {
      expect((await api.exec(id, 'true')).exitCode).toBe(0)
      const during = await scrape()
      expect(sample(during, running)).toBe(sample(before, running) + 1)
      // The files of this run share the manager, one at a time: the counts moved by this VM alone.
      expect(sample(during, `rds_vm_create_seconds_count{mode="${provisionMode}"}`)).toBe(sample(before, `rds_vm_create_seconds_count{mode="${provisionMode}"}`) + 1)
      expect(sample(during, 'rds_exec_seconds_count{kind="exec"}')).toBe(sample(before, 'rds_exec_seconds_count{kind="exec"}') + 1)
      expect(sample(during, 'rds_exec_seconds_sum{kind="exec"}')).toBeGreaterThan(sample(before, 'rds_exec_seconds_sum{kind="exec"}'))
    } finally {
      expect((await api.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    }
    const after = await scrape()
    expect(sample(after, running)).toBe(sample(before, running))
    expect(after).not.toContain(id)
  })
})
describe('lifecycle', () => {
  let mgr: ManagerProcess
  let vmId: string

  beforeAll(async () => {
    mgr = new ManagerProcess()
    await mgr.start()
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}\n${mgr.output}`)
    vmId = r.body.id
  })

  afterAll(async () => {
    if (vmId) await mgr.request('DELETE', `/v1/vms/${vmId}`)
    await mgr?.cleanup()
  })

  it('stop keeps /workspace, start boots it again, a second stop is a 409', async () => {
    const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    expect(c.status).toBe(201)
    const id = c.body.id
    await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'echo persisted > /workspace/keep.txt' })
    expect((await mgr.request('POST', `/v1/vms/${id}/stop`)).status).toBe(204)
    expect((await mgr.request('GET', `/v1/vms/${id}`)).body.state).toBe('STOPPED')
    const again = await mgr.request('POST', `/v1/vms/${id}/stop`)
    expect(again.status).toBe(409)
    expect(again.body).toMatchObject({ code: 'vm_state_conflict', message: 'VM must be RUNNING to stop (state=STOPPED)' })
    const exec = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'true' })
    expect(exec.status).toBe(409)
    expect((await mgr.request('POST', `/v1/vms/${id}/start`)).status).toBe(204)
    const cat = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: 'cat /workspace/keep.txt' })
    expect(cat.body.stdout).toBe('persisted\n')
    expect((await mgr.request('DELETE', `/v1/vms/${id}`)).status).toBe(204)
    expect((await mgr.request('GET', `/v1/vms/${id}`)).status).toBe(404)
    expect(fs.existsSync(path.join(mgr.storageRoot, 'vms', id))).toBe(false)
  })

  it('a manager stopped (SIGTERM) or killed (-9) re-attaches to running VMs on restart and leaves no orphan', async () => {
    const bootId = 'cat /proc/sys/kernel/random/boot_id'
    const before = (await mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd: bootId })).body.stdout
    const qemuBefore = qemuProcessesOf(mgr.storageRoot)
    await mgr.stop('SIGTERM')
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual(qemuBefore)
    await mgr.start()
    expect((await mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd: bootId })).body.stdout).toBe(before)
    await mgr.stop('SIGKILL')
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual(qemuBefore) // VMs survive the manager
    await mgr.start()
    const vm = await mgr.request('GET', `/v1/vms/${vmId}`)
    expect(vm.body.state).toBe('RUNNING')
    const after = await mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd: bootId })
    expect(after.body.stdout).toBe(before) // the same boot: re-attached, not rebooted
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual(qemuBefore)
  })

  it('deleting the last VM leaves no VMM process and no VM directory behind', async () => {
    const r = await mgr.request('DELETE', `/v1/vms/${vmId}`)
    expect(r.status).toBe(204)
    vmId = ''
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual([])
    expect(fs.readdirSync(path.join(mgr.storageRoot, 'vms'))).toEqual([])
  })
})
