// Peer SDK VMs through the real manager and real VMs: two providers, each holding its own secret,
// and one consumer calling both through the generated proxies. The VMs are shared by all tests of
// this file (boots are slow under TCG); tests run in order and each says what it changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { AGENT_PID_SH } from '../harness/guest-probe.ts'
import { ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'

const A_TOKEN = 'a-token-7c1f9e3b5d'
const B_TOKEN = 'b-token-2e8a4c6f0d'

let mgr: ManagerProcess
let providerA: string
let providerB: string
let consumer: string

const example = [{ description: 'Example', code: 'await fn()' }]
const fnExport = (name: string, description = `${name} export`) => ({ name, description, params: [{ name: 'name', description: 'Who', schema: { type: 'string' } }], returns: { description: 'Result', schema: { type: 'object' } }, examples: example })
const manifestA = (names: string[]) => ({ sdk: { name: 'greeter', description: 'Greets with provider A credentials' }, modules: [{ path: 'sdk/greet.ts', exports: names.map((n) => fnExport(n)) }] })
const manifestB = { sdk: { name: 'tools', description: 'Node tools of provider B' }, modules: [{ path: 'lib/tool.mjs', exports: [fnExport('whoami')] }] }

const GREET_TS = `
export function greet(name: string) { return { text: 'hello ' + name, tokenLength: (Deno.env.get('A_TOKEN') ?? '').length } }
export function fail() { throw new Error('upstream rejected token ' + Deno.env.get('A_TOKEN')) }
export function internalHelper() { Deno.writeTextFileSync('/workspace/helper-ran', 'yes'); return 'ran' }
export const notAFunction = 42
export function farewell(name: string) { return 'bye ' + name }
export async function slow(ms: number) { await new Promise((r) => setTimeout(r, ms)); return ms }
export function big(n: number) { return 'x'.repeat(n) }
`
const TOOL_MJS = `export async function whoami() { return { provider: 'b', tokenLength: (process.env.B_TOKEN ?? '').length } }\n`

const exec = (vmId: string, cmd: string) => mgr.exec(vmId, cmd)
const writeFile = (vmId: string, file: string, content: string) => mgr.writeFile(vmId, file, content)
const runTs = async (vmId: string, code: string) => (await mgr.request('POST', `/v1/vms/${vmId}/run-ts`, { code })).body
const runJs = async (vmId: string, code: string) => (await mgr.request('POST', `/v1/vms/${vmId}/run-js`, { code })).body

async function createVm(extra: Record<string, unknown> = {}) {
  return mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], ...extra })
}

beforeAll(async () => {
  // Guest root (test hook) only to kill the consumer's agent in the reconnect test.
  mgr = new ManagerProcess({ VM_SECRET_KEY: 'peers-test-operator-key', RDS_TEST_GUEST_ROOT: 'true' })
  await mgr.start()
  const [a, b] = await Promise.all([createVm({ secretEnv: [`A_TOKEN=${A_TOKEN}`] }), createVm({ secretEnv: [`B_TOKEN=${B_TOKEN}`] })])
  if (a.status !== 201 || b.status !== 201) throw new Error(`provider create failed: ${JSON.stringify([a.body, b.body])}\n${mgr.output}`)
  providerA = a.body.id
  providerB = b.body.id
  await writeFile(providerA, '/workspace/sdk/greet.ts', GREET_TS)
  await writeFile(providerA, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifestA(['greet', 'fail', 'slow', 'big'])))
  await writeFile(providerB, '/workspace/lib/tool.mjs', TOOL_MJS)
  await writeFile(providerB, '/workspace/lib/notes.md', 'plain notes\n')
  await writeFile(providerB, '/workspace/.env', `B_TOKEN=${B_TOKEN}\n`)
  await writeFile(providerB, '/workspace/config/settings.json', JSON.stringify({ token: B_TOKEN }))
  await writeFile(providerB, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifestB))
  const c = await createVm({ peerLinks: [{ alias: 'a', vmId: providerA }, { alias: 'b', vmId: providerB, sourceMode: 'mounted' }] })
  if (c.status !== 201) throw new Error(`consumer create failed: ${JSON.stringify(c.body)}\n${mgr.output}`)
  consumer = c.body.id
})

afterAll(async () => {
  for (const id of [consumer, providerA, providerB]) if (id) await mgr.request('DELETE', `/v1/vms/${id}`)
  await mgr.cleanup()
})

describe('peer links', () => {
  it('shows the links on the consumer', async () => {
    const r = await mgr.request('GET', `/v1/vms/${consumer}`)
    expect(r.body.peerLinks).toEqual([
      { alias: 'a', vmId: providerA, sourceMode: 'hidden' },
      { alias: 'b', vmId: providerB, sourceMode: 'mounted' },
    ])
    const p = await mgr.request('GET', `/v1/vms/${providerA}`)
    expect(p.body.peerLinks).toEqual([])
  })

  it('gives the consumer read-only, root-owned discovery files and proxies', async () => {
    const index = JSON.parse((await exec(consumer, 'cat /workspace/peers/index.json')).stdout)
    expect(index.peers.map((p: { alias: string; sdkName: string }) => [p.alias, p.sdkName])).toEqual([['a', 'greeter'], ['b', 'tools']])
    const ls = await exec(consumer, 'stat -c "%U %a %n" /workspace/peers /workspace/peers/a/README.md /workspace/peers/a/proxy/sdk/greet.ts /workspace/peers/b/manifest.json')
    expect(ls.stdout.trim().split('\n')).toEqual(['root 555 /workspace/peers', 'root 444 /workspace/peers/a/README.md', 'root 444 /workspace/peers/a/proxy/sdk/greet.ts', 'root 444 /workspace/peers/b/manifest.json'])
    const write = await exec(consumer, 'echo x > /workspace/peers/a/README.md; touch /workspace/peers/new; echo done')
    expect(write.stderr).toContain('Permission denied')
    const readme = (await exec(consumer, 'cat /workspace/peers/a/README.md')).stdout
    expect(readme).toContain('import { greet } from "file:///workspace/peers/a/proxy/sdk/greet.ts";')
  })

  it('calls both providers from one run-ts, each with its own secret', async () => {
    const r = await runTs(consumer, `
      import { greet } from "file:///workspace/peers/a/proxy/sdk/greet.ts";
      import { whoami } from "file:///workspace/peers/b/proxy/lib/tool.mjs";
      result.set({ a: await greet("bob"), b: await whoami() });`)
    expect(r.error).toBeUndefined()
    expect(r.result).toEqual({ a: { text: 'hello bob', tokenLength: A_TOKEN.length }, b: { provider: 'b', tokenLength: B_TOKEN.length } })
  })

  it('works from Node, ESM and CommonJS', async () => {
    const esm = await runJs(consumer, `import { whoami } from "/workspace/peers/b/proxy/lib/tool.mjs"; result.set(await whoami());`)
    expect(esm.result).toEqual({ provider: 'b', tokenLength: B_TOKEN.length })
    const cjs = await runJs(consumer, `const { greet } = require("/workspace/peers/a/proxy/sdk/greet.ts"); greet("cjs").then((v) => result.set(v), (e) => result.error(e));`)
    expect(cjs.error).toBeUndefined()
    expect(cjs.result).toEqual({ text: 'hello cjs', tokenLength: A_TOKEN.length })
  })

  it("throws the provider's error with its secret masked", async () => {
    const r = await runTs(consumer, `
      import { fail } from "file:///workspace/peers/a/proxy/sdk/greet.ts";
      try { await fail(); } catch (e) { result.set({ message: e.message, code: e.code }); }`)
    expect(r.result.code).toBe('peer_call_failed')
    expect(r.result.message).toBe('upstream rejected token [secret A_TOKEN]')
  })

  it('refuses a hand-edited call to an undeclared export, and runs nothing', async () => {
    await exec(consumer, `sed 's/exportName: "greet"/exportName: "internalHelper"/' /workspace/peers/a/proxy/sdk/greet.ts > /workspace/evil.ts`)
    const r = await runTs(consumer, `
      import { greet } from "file:///workspace/evil.ts";
      try { await greet(); } catch (e) { result.set({ message: e.message, code: e.code }); }`)
    expect(r.result).toEqual({ code: 'peer_call_forbidden', message: 'Peer alias a: /workspace/sdk/greet.ts export internalHelper is not declared in the provider manifest' })
    // An alias this VM has no link for, spoken to the socket directly.
    const raw = await runJs(consumer, `
      const net = require('node:net');
      const s = net.connect('/run/rds-peer/bridge.sock', () => s.write(JSON.stringify({ alias: 'c', modulePath: '/workspace/sdk/greet.ts', exportName: 'greet', args: [] }) + '\\n'));
      let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => result.set(JSON.parse(t)));`)
    expect(raw.result).toEqual({ ok: false, code: 'peer_call_forbidden', message: `VM ${consumer} is not linked to alias c` })
    const ran = await exec(providerA, 'test -e /workspace/helper-ran && echo ran || echo no')
    expect(ran.stdout.trim()).toBe('no')
  })

  it('keeps provider secrets out of the consumer: env, files, /proc, exec history', async () => {
    // The pattern ends in a bracket expression so this command's own cmdline does not match it.
    const pattern = (t: string) => `${t.slice(0, -1)}[${t.slice(-1)}]`
    const scan = await exec(consumer, `env | grep -cE '${pattern(A_TOKEN)}|${pattern(B_TOKEN)}'; grep -rlsE '${pattern(A_TOKEN)}|${pattern(B_TOKEN)}' /workspace /tmp /run /home /proc/[0-9]*/environ /proc/[0-9]*/cmdline; echo scanned`)
    expect(scan.stdout).toBe('0\nscanned\n')
    const logs = await mgr.request('GET', `/v1/vms/${consumer}/exec-logs?limit=100`)
    expect(JSON.stringify(logs.body)).not.toContain(A_TOKEN)
    expect(JSON.stringify(logs.body)).not.toContain(B_TOKEN)
  })

  it('mounts a sanitized copy of the provider source only when asked', async () => {
    const b = await exec(consumer, 'cd /workspace/peers/b/source && find . -type f | sort')
    expect(b.stdout.trim().split('\n')).toEqual(['./.rds-peer/manifest.json', './lib/notes.md', './lib/tool.mjs'])
    expect((await exec(consumer, 'ls /workspace/peers/a')).stdout).not.toContain('source')

    const toMounted = await mgr.request('PATCH', `/v1/vms/${consumer}/peers/a`, { sourceMode: 'mounted' })
    expect(toMounted.status).toBe(204)
    expect((await mgr.request('GET', `/v1/vms/${consumer}`)).body.peerLinks[0]).toEqual({ alias: 'a', vmId: providerA, sourceMode: 'mounted' })
    expect((await exec(consumer, 'cat /workspace/peers/a/source/sdk/greet.ts')).stdout).toBe(GREET_TS)
    const toHidden = await mgr.request('PATCH', `/v1/vms/${consumer}/peers/a`, { sourceMode: 'hidden' })
    expect(toHidden.status).toBe(204)
    expect((await exec(consumer, 'ls /workspace/peers/a')).stdout).not.toContain('source')
    const bad = await mgr.request('PATCH', `/v1/vms/${consumer}/peers/zzz`, { sourceMode: 'mounted' })
    expect(bad.status).toBe(404)
    expect(bad.body.code).toBe('peer_link_not_found')
  })

  it('enforces the argument and result sizes, call timeout and per-link concurrency limits', async () => {
    const r = await runTs(consumer, `
      import { invokePeer } from "file:///workspace/peers/.runtime/bridge.mjs";
      import { greet, slow } from "file:///workspace/peers/a/proxy/sdk/greet.ts";
      const codeOf = async (p) => { try { await p; return 'ok' } catch (e) { return e.code } };
      const big = await codeOf(greet('x'.repeat(300 * 1024)));
      const timeout = await codeOf(invokePeer({ alias: 'a', modulePath: '/workspace/sdk/greet.ts', exportName: 'slow', args: [20000], timeoutMs: 1500 }));
      const huge = await codeOf(invokePeer({ alias: 'a', modulePath: '/workspace/sdk/greet.ts', exportName: 'big', args: [2 * 1024 * 1024] }));
      const parallel = await Promise.all([1, 2, 3, 4, 5, 6].map(() => codeOf(slow(3000))));
      result.set({ big, timeout, huge, parallel: parallel.sort() });`)
    expect(r.error).toBeUndefined()
    expect(r.result).toEqual({ big: 'peer_args_too_large', timeout: 'peer_call_timeout', huge: 'peer_result_too_large', parallel: ['ok', 'ok', 'ok', 'ok', 'peer_concurrency_limited', 'peer_concurrency_limited'] })
  })

  it('picks up a provider change on sync, not before', async () => {
    await writeFile(providerA, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifestA(['greet', 'fail', 'slow', 'big', 'farewell'])))
    const before = await runTs(consumer, `
      import { invokePeer } from "file:///workspace/peers/.runtime/bridge.mjs";
      try { await invokePeer({ alias: 'a', modulePath: '/workspace/sdk/greet.ts', exportName: 'farewell', args: ['x'] }); } catch (e) { result.set(e.code); }`)
    expect(before.result).toBe('peer_call_forbidden')
    const sync = await mgr.request('POST', `/v1/vms/${consumer}/peers/sync`)
    expect(sync.status).toBe(204)
    const after = await runTs(consumer, `import { farewell } from "file:///workspace/peers/a/proxy/sdk/greet.ts"; result.set(await farewell("ann"));`)
    expect(after.result).toBe('bye ann')
  })

  it('refuses a consumer whose provider has no manifest or a non-callable export, leaving nothing', async () => {
    const vmsBefore = (await mgr.request('GET', '/v1/vms')).body.length
    const qemuBefore = qemuProcessesOf(mgr.storageRoot).length
    const dirsBefore = fs.readdirSync(path.join(mgr.storageRoot, 'vms')).length
    const links = () => execFileSync('ip', ['netns', 'exec', mgr.netns, 'ip', '-o', 'link', 'show']).toString().split('\n').filter(Boolean).length
    const linksBefore = links()

    const missing = await createVm({ peerLinks: [{ alias: 'x', vmId: consumer }] })
    expect(missing.status).toBe(400)
    expect(missing.body).toEqual({ code: 'invalid_peer_manifest', message: 'Peer alias x: missing provider manifest at /workspace/.rds-peer/manifest.json', requestId: expect.any(String) })

    await writeFile(providerA, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifestA(['greet', 'notAFunction'])))
    const notCallable = await createVm({ peerLinks: [{ alias: 'a', vmId: providerA }] })
    expect(notCallable.status).toBe(400)
    expect(notCallable.body.message).toBe('Peer alias a: declared export notAFunction is not callable in /workspace/sdk/greet.ts')
    await writeFile(providerA, '/workspace/.rds-peer/manifest.json', JSON.stringify(manifestA(['greet', 'fail', 'slow', 'big', 'farewell'])))

    const badAlias = await createVm({ peerLinks: [{ alias: 'no/slash', vmId: providerA }] })
    expect(badAlias.body).toEqual({ code: 'invalid_peer_links', message: 'Invalid peerLinks alias', requestId: expect.any(String) })
    const unknown = await createVm({ peerLinks: [{ alias: 'z', vmId: 'does-not-exist' }] })
    expect(unknown.body).toEqual({ code: 'invalid_peer_links', message: 'peerLinks target not found: does-not-exist', requestId: expect.any(String) })

    expect((await mgr.request('GET', '/v1/vms')).body.length).toBe(vmsBefore)
    expect(qemuProcessesOf(mgr.storageRoot).length).toBe(qemuBefore)
    expect(fs.readdirSync(path.join(mgr.storageRoot, 'vms')).length).toBe(dirsBefore)
    expect(links()).toBe(linksBefore)
  })

  it('keeps the bridge working across a manager restart', async () => {
    await mgr.stop()
    await mgr.start()
    const r = await runTs(consumer, `import { greet } from "file:///workspace/peers/a/proxy/sdk/greet.ts"; result.set(await greet("again"));`)
    expect(r.result).toEqual({ text: 'hello again', tokenLength: A_TOKEN.length })
  })

  it('keeps the bridge working when the guest init restarts the consumer\'s agent', async () => {
    const before = (await mgr.request('POST', `/v1/vms/${consumer}/test-hooks/root-exec`, { cmd: AGENT_PID_SH })).body.stdout
    // The exec that kills the agent loses its answer with it; what matters is what happens next.
    await mgr.request('POST', `/v1/vms/${consumer}/test-hooks/root-exec`, { cmd: `kill -9 ${before.trim()}`, timeoutMs: 10_000 })
    const deadline = Date.now() + 60_000
    let r: any
    while (Date.now() < deadline) {
      r = await mgr.request('POST', `/v1/vms/${consumer}/run-ts`, { code: `import { greet } from "file:///workspace/peers/a/proxy/sdk/greet.ts"; result.set(await greet("revived"));` })
      if (r.status === 200 && r.body.result) break
      await new Promise((res) => setTimeout(res, 1000))
    }
    expect(r.body.result).toEqual({ text: 'hello revived', tokenLength: A_TOKEN.length })
    const after = (await mgr.request('POST', `/v1/vms/${consumer}/test-hooks/root-exec`, { cmd: AGENT_PID_SH })).body.stdout
    expect(after.trim()).toMatch(/^\d+$/)
    expect(after).not.toBe(before)
  })

  it('gives a clone of the consumer only its own links: none unless created with them', async () => {
    const snap = await mgr.request('POST', `/v1/vms/${consumer}/snapshots`)
    expect(snap.status).toBe(201)
    const [bare, linked] = await Promise.all([
      createVm({ snapshotId: snap.body.id }),
      createVm({ snapshotId: snap.body.id, peerLinks: [{ alias: 'a', vmId: providerA }] }),
    ])
    try {
      expect([bare.status, linked.status]).toEqual([201, 201])
      expect(bare.body.peerLinks).toEqual([])
      expect(linked.body.peerLinks).toEqual([{ alias: 'a', vmId: providerA, sourceMode: 'hidden' }])
      const call = `
        import { greet } from "file:///workspace/peers/a/proxy/sdk/greet.ts";
        try { result.set(await greet("clone")); } catch (e) { result.set({ message: e.message, code: e.code }); }`
      // The bare clone still has the consumer's files (its disk is a copy) but no authority.
      expect((await runTs(bare.body.id, call)).result).toEqual({ code: 'peer_call_forbidden', message: `VM ${bare.body.id} is not linked to alias a` })
      expect((await runTs(linked.body.id, call)).result).toEqual({ text: 'hello clone', tokenLength: A_TOKEN.length })
      expect((await exec(linked.body.id, 'ls /workspace/peers')).stdout).toBe('a\nindex.json\n')
    } finally {
      for (const c of [bare, linked]) if (c.body?.id) await mgr.request('DELETE', `/v1/vms/${c.body.id}`)
      await mgr.request('DELETE', `/v1/snapshots/${snap.body.id}`)
    }
  })

  it('refuses calls under a removed link and removes its files; links can be added after create', async () => {
    const del = await mgr.request('DELETE', `/v1/vms/${consumer}/peers/a`)
    expect(del.status).toBe(200)
    expect(del.body.peerLinks.map((l: { alias: string }) => l.alias)).toEqual(['b'])
    const r = await runTs(consumer, `
      import { invokePeer } from "file:///workspace/peers/.runtime/bridge.mjs";
      try { await invokePeer({ alias: 'a', modulePath: '/workspace/sdk/greet.ts', exportName: 'greet', args: ['x'] }); } catch (e) { result.set({ message: e.message, code: e.code }); }`)
    expect(r.result).toEqual({ code: 'peer_call_forbidden', message: `VM ${consumer} is not linked to alias a` })
    expect((await exec(consumer, 'ls /workspace/peers')).stdout).toBe('b\nindex.json\n')

    // And added back after create, checked like at create.
    const self = await mgr.request('POST', `/v1/vms/${consumer}/peers`, { alias: 'me', vmId: consumer })
    expect(self.body).toEqual({ code: 'invalid_peer_links', message: 'peerLinks cannot self-reference', requestId: expect.any(String) })
    const dup = await mgr.request('POST', `/v1/vms/${consumer}/peers`, { alias: 'b', vmId: providerA })
    expect(dup.body).toEqual({ code: 'invalid_peer_links', message: 'peerLinks aliases must be unique', requestId: expect.any(String) })
    const add = await mgr.request('POST', `/v1/vms/${consumer}/peers`, { alias: 'a2', vmId: providerA })
    expect(add.status).toBe(200)
    expect(add.body.peerLinks.map((l: { alias: string }) => l.alias)).toEqual(['b', 'a2'])
    const again = await runTs(consumer, `import { greet } from "file:///workspace/peers/a2/proxy/sdk/greet.ts"; result.set(await greet("back"));`)
    expect(again.result).toEqual({ text: 'hello back', tokenLength: A_TOKEN.length })
  })

  it('writes the peer files without following a link the user planted at /workspace/peers', async () => {
    // Issue 13, finding 11: root writes the consumer's peer files; uid 1000 owns /workspace and may
    // plant a symlink where they go, to steer root's writes (here into a directory of its own, so
    // anything written through the link would show).
    const c = await createVm()
    expect(c.status).toBe(201)
    const vm = c.body.id
    try {
      await exec(vm, 'mkdir /workspace/steered && ln -s /workspace/steered /workspace/peers')
      const add = await mgr.request('POST', `/v1/vms/${vm}/peers`, { alias: 'a', vmId: providerA })
      expect(add.status).toBe(200)
      const after = await exec(vm, 'stat -c "%F %U %a" /workspace/peers; ls -A /workspace/steered | wc -l; ls /workspace/peers')
      expect(after.stdout).toBe('directory root 555\n0\na\nindex.json\n')
    } finally {
      await mgr.request('DELETE', `/v1/vms/${vm}`)
    }
  })

  it('fails calls cleanly while the provider is stopped and once it is gone', async () => {
    const callB = `
      import { whoami } from "file:///workspace/peers/b/proxy/lib/tool.mjs";
      try { await whoami(); } catch (e) { result.set({ message: e.message, code: e.code }); }`
    expect((await mgr.request('POST', `/v1/vms/${providerB}/stop`)).status).toBe(204)
    const stopped = await runTs(consumer, callB)
    expect(stopped.result).toEqual({ code: 'peer_provider_not_running', message: `Peer alias b: VM ${providerB} must be RUNNING (state=STOPPED)` })
    expect((await mgr.request('DELETE', `/v1/vms/${providerB}`)).status).toBe(204)
    const r = await runTs(consumer, `
      import { whoami } from "file:///workspace/peers/b/proxy/lib/tool.mjs";
      try { await whoami(); } catch (e) { result.set({ message: e.message, code: e.code }); }`)
    expect(r.result).toEqual({ code: 'peer_provider_not_found', message: `Peer alias b: provider VM ${providerB} no longer exists` })
    providerB = ''
  })
})
