// The n8n node (packages/n8n-nodes-run-dat-sheesh) in n8n's own engine against the shared manager
// and a real VM: the package is built as it is published, loaded by n8n-core as n8n loads a
// community package, and workflows run by n8n-core's WorkflowExecute (test/engine/ of the package).
// Assertions are on the items each node put out, as n8n shows them in an execution.
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { N8nHost, WorkflowJson } from '../../../n8n-nodes-run-dat-sheesh/test/engine/run-workflow.ts'
import { n8nHost } from '../../../n8n-nodes-run-dat-sheesh/test/engine/run-workflow.ts'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'

const PACKAGE_DIR = path.resolve(import.meta.dirname, '../../../n8n-nodes-run-dat-sheesh')
const NODE_TYPE = 'n8n-nodes-run-dat-sheesh.runDatSheesh'

let mgr: ManagerClient
let host: N8nHost
const vmsToDelete: string[] = []
const snapshotsToDelete: string[] = []

type Parameters = WorkflowJson['nodes'][number]['parameters']
interface Step {
  name: string
  parameters: Parameters
  /** The node whose output feeds this one (default: the step before it); two steps from one node are two branches. */
  from?: string
  credentialId?: string
  onError?: 'continueRegularOutput'
}

/** A workflow from a manual trigger through the steps, as n8n's editor saves it. */
function workflow(name: string, steps: Step[]): WorkflowJson {
  const nodes: WorkflowJson['nodes'] = [{ id: 'start', name: 'Start', type: 'n8n-nodes-base.manualTrigger', typeVersion: 1, position: [0, 0], parameters: {} }]
  const connections: WorkflowJson['connections'] = {}
  for (const [i, s] of steps.entries()) {
    nodes.push({
      id: `n${i}`,
      name: s.name,
      type: NODE_TYPE,
      typeVersion: 1,
      position: [200 * (i + 1), 0],
      parameters: s.parameters,
      credentials: { runDatsheeshApi: { id: s.credentialId ?? 'rds', name: 'run-dat-sheesh' } },
      ...(s.onError ? { onError: s.onError } : {}),
    })
    const from = s.from ?? nodes[i]!.name
    ;((connections[from] ??= { main: [[]] }).main[0] ??= []).push({ node: s.name, type: 'main', index: 0 })
  }
  return { name, nodes, connections }
}

beforeAll(async () => {
  mgr = await sharedManager()
  // As published: tsc into dist/, which is what n8n loads.
  // (tsc would leave its compile cache in the file's TMPDIR.)
  execFileSync(process.execPath, [path.join(PACKAGE_DIR, 'build.mjs')], { stdio: 'inherit', env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '1' } })
  host = await n8nHost(PACKAGE_DIR)
})
afterAll(async () => {
  for (const id of snapshotsToDelete) await mgr?.request('DELETE', `/v1/snapshots/${id}`).catch(() => {})
  for (const id of vmsToDelete) await mgr?.request('DELETE', `/v1/vms/${id}`).catch(() => {})
  host?.close()
})

describe('n8n loads the package', () => {
  it('finds the original\'s node and credential under their names, usable as a tool', () => {
    const node = host.nodeTypes.getByNameAndVersion(NODE_TYPE, 1)
    expect(node.description).toMatchObject({ displayName: 'Run Dat sheesh', usableAsTool: true, credentials: [{ name: 'runDatsheeshApi', required: true }] })
    const cred = host.loader.credentialTypes.runDatsheeshApi!.type
    expect(cred.properties.map((p) => p.name)).toEqual(['baseUrl', 'apiKey'])
    // The original's resources and operations are all there (ours come on top).
    const ops = (resource: string) => node.description.properties.find((p) => p.name === 'operation' && p.displayOptions?.show?.resource?.[0] === resource)!.options!.map((o) => (o as { value: string }).value)
    expect(ops('image')).toEqual(expect.arrayContaining(['list']))
    expect(ops('file')).toEqual(expect.arrayContaining(['upload', 'download']))
    expect(ops('snapshot')).toEqual(expect.arrayContaining(['list', 'createFromVm']))
    expect(ops('vm')).toEqual(expect.arrayContaining(['list', 'get', 'create', 'start', 'stop', 'destroy', 'exec', 'runTs', 'runJs', 'pause', 'resume', 'getNetwork', 'updateNetwork', 'addPeer']))
  })

  it('passes n8n\'s credential test with the manager\'s key (a base URL with a trailing slash too) and fails it with another', async () => {
    const ok = await host.testCredential('runDatsheeshApi', { baseUrl: `${mgr.baseUrl}/`, apiKey: mgr.apiKey })
    expect(ok.data.resultData.error?.message).toBeUndefined()
    expect(ok.status).toBe('success')
    const bad = await host.testCredential('runDatsheeshApi', { baseUrl: mgr.baseUrl, apiKey: 'not-the-key' })
    expect(bad.status).toBe('error')
    expect(bad.data.resultData.error).toMatchObject({ name: 'NodeApiError', httpCode: '401' })
  })
})

describe('a workflow in n8n\'s engine against a real VM', () => {
  it('creates a VM, runs in it, moves files through binary data, snapshots it and deletes it', async () => {
    const vm = "={{ $('Create VM').item.json.id }}"
    const wf = workflow('sandbox round trip', [
      { name: 'Create VM', parameters: { resource: 'vm', operation: 'create', cpu: 1, memMb: 512, secretEnv: { variables: [{ name: 'N8N_SECRET', value: 's3cret' }] } } },
      { name: 'Exec', parameters: { resource: 'vm', operation: 'exec', vmId: '={{ $json.id }}', cmd: 'mkdir -p /workspace/out && echo "hello from n8n" && id -u && [ "$N8N_SECRET" = s3cret ] && echo secret-ok' } },
      { name: 'Write File', parameters: { resource: 'file', operation: 'write', vmId: vm, path: '/workspace/out/note.txt', inputDataType: 'text', content: '=exit {{ $json.exitCode }}: {{ $json.stdout.split("\\n")[0] }}' } },
      { name: 'Read File', parameters: { resource: 'file', operation: 'read', vmId: vm, path: '/workspace/out/note.txt', outputDataType: 'binary', binaryPropertyName: 'data' } },
      { name: 'Write Copy', parameters: { resource: 'file', operation: 'write', vmId: vm, path: '/workspace/out/copy.txt', inputDataType: 'binary', binaryPropertyName: 'data' } },
      { name: 'Download', parameters: { resource: 'file', operation: 'download', vmId: vm, path: '/workspace/out', binaryPropertyName: 'archive' } },
      { name: 'Upload', parameters: { resource: 'file', operation: 'upload', vmId: vm, dest: '/workspace/restored', binaryPropertyName: 'archive' } },
      { name: 'Check', parameters: { resource: 'vm', operation: 'exec', vmId: vm, cmd: 'cd /workspace/restored && find . -type f | sort && cat "$(find . -name copy.txt)"' } },
      // A branch of its own: a listing puts out one item per entry, and every node after it would
      // run once per item (n8n's way).
      { name: 'List Files', parameters: { resource: 'file', operation: 'list', vmId: vm, path: '/workspace/out' } },
      { name: 'Run TS', from: 'Check', parameters: { resource: 'vm', operation: 'runTs', vmId: vm, source: 'code', code: 'const n: number = Deno.args.length; result.set({ n, from: Deno.env.get("FROM") })', env: { variables: [{ name: 'FROM', value: 'n8n' }] }, options: { args: ['a', 'b c'] } } },
      { name: 'Run JS', parameters: { resource: 'vm', operation: 'runJs', vmId: vm, source: 'code', code: 'result.set({ sum: 40 + 2 })' } },
      { name: 'Update Network', parameters: { resource: 'vm', operation: 'updateNetwork', vmId: vm, allowIps: '203.0.113.7, 198.51.100.0/24', allowDomains: '', outboundInternet: false } },
      { name: 'Get Network', parameters: { resource: 'vm', operation: 'getNetwork', vmId: vm } },
      { name: 'Link Unknown Provider', onError: 'continueRegularOutput', parameters: { resource: 'vm', operation: 'addPeer', vmId: vm, alias: 'sdk', providerVmId: 'no-such-vm', sourceMode: 'hidden' } },
      { name: 'Sync Peers', parameters: { resource: 'vm', operation: 'syncPeers', vmId: vm } },
      { name: 'Pause', parameters: { resource: 'vm', operation: 'pause', vmId: vm } },
      { name: 'Resume', parameters: { resource: 'vm', operation: 'resume', vmId: vm } },
      { name: 'Get VM', parameters: { resource: 'vm', operation: 'get', vmId: vm } },
      { name: 'Snapshot', parameters: { resource: 'snapshot', operation: 'createFromVm', vmId: vm } },
      { name: 'Delete VM', parameters: { resource: 'vm', operation: 'destroy', vmId: vm } },
    ])
    const run = await host.run(wf, { rds: { baseUrl: mgr.baseUrl, apiKey: mgr.apiKey } })
    const out = (name: string) => run.data.resultData.runData[name]?.[0]?.data?.main?.[0] ?? []
    const created = out('Create VM')[0]?.json
    if (typeof created?.id === 'string') vmsToDelete.push(created.id)
    const snap = out('Snapshot')[0]?.json
    if (typeof snap?.id === 'string') snapshotsToDelete.push(snap.id)
    expect(run.data.resultData.error?.message).toBeUndefined()
    expect(run.status).toBe('success')

    expect(created).toMatchObject({ state: 'RUNNING', cpu: 1, memMb: 512 })
    // The secret reached the run and is not in what the API answered.
    expect(JSON.stringify(created)).not.toContain('s3cret')
    expect(out('Exec')[0]?.json).toMatchObject({ exitCode: 0, stdout: 'hello from n8n\n1000\nsecret-ok\n', stderr: '' })
    expect(out('Write File')[0]?.json).toMatchObject({ success: true, vmId: created!.id, path: '/workspace/out/note.txt', bytes: 'exit 0: hello from n8n'.length })
    const read = out('Read File')[0]!
    expect(read.json).toMatchObject({ path: '/workspace/out/note.txt', bytes: 22 })
    expect(read.binary?.data).toMatchObject({ fileName: 'note.txt', mimeType: 'text/plain' })
    expect(Buffer.from(read.binary!.data!.data, 'base64').toString()).toBe('exit 0: hello from n8n')
    expect(out('Write Copy')[0]?.json).toMatchObject({ success: true, path: '/workspace/out/copy.txt', bytes: 22 })
    const download = out('Download')[0]!
    expect(download.binary?.archive).toMatchObject({ fileName: 'out.tar.gz', mimeType: 'application/gzip' })
    const tar = gunzipSync(Buffer.from(download.binary!.archive!.data, 'base64')).toString('latin1')
    expect(tar).toContain('note.txt')
    expect(tar).toContain('exit 0: hello from n8n')
    expect(out('Upload')[0]?.json).toMatchObject({ success: true, dest: '/workspace/restored' })
    const check = out('Check')[0]?.json as { exitCode: number; stdout: string }
    expect(check.exitCode).toBe(0)
    expect(check.stdout).toMatch(/copy\.txt\n/)
    expect(check.stdout).toMatch(/note\.txt\n/)
    expect(check.stdout.endsWith('exit 0: hello from n8n')).toBe(true)
    // A listing is one item per entry.
    expect(out('List Files').map((i) => i.json.name).sort()).toEqual(['copy.txt', 'note.txt'])
    expect(out('Run TS')).toHaveLength(1)
    expect(out('Run TS')[0]?.json).toMatchObject({ exitCode: 0, result: { n: 2, from: 'n8n' } })
    expect(out('Run JS')[0]?.json).toMatchObject({ exitCode: 0, result: { sum: 42 } })
    expect(out('Update Network')[0]?.json).toMatchObject({ allowIps: ['203.0.113.7', '198.51.100.0/24'], outboundInternet: false })
    expect(out('Get Network')[0]?.json).toMatchObject({ guestIp: created!.guestIp, allowIps: ['203.0.113.7', '198.51.100.0/24'] })
    expect(out('Link Unknown Provider')[0]?.json).toEqual({ error: 'peerLinks target not found: no-such-vm', code: 'invalid_peer_links', httpCode: '400' })
    expect(out('Sync Peers')[0]?.json).toEqual({ success: true, vmId: created!.id })
    expect(out('Pause')[0]?.json).toEqual({ success: true, vmId: created!.id })
    expect(out('Resume')[0]?.json).toEqual({ success: true, vmId: created!.id })
    expect(out('Get VM')[0]?.json).toMatchObject({ id: created!.id, state: 'RUNNING', allowIps: ['203.0.113.7', '198.51.100.0/24'] })
    expect(snap).toMatchObject({ kind: 'user_overlay', sourceVmId: created!.id, containsSecrets: true })
    expect(out('Delete VM')[0]?.json).toEqual({ success: true, vmId: created!.id })
    expect((await mgr.request('GET', `/v1/vms/${created!.id}`)).status).toBe(404)
    expect((await mgr.request('GET', `/v1/snapshots/${snap!.id}`)).status).toBe(200)
  })

  it('surfaces the API\'s refusal: its code, status and sentence in the node error, or in the item when the node continues', async () => {
    const wf = workflow('refusals', [
      { name: 'Wrong Key', credentialId: 'bad', onError: 'continueRegularOutput', parameters: { resource: 'vm', operation: 'list' } },
      { name: 'Too Many CPUs', parameters: { resource: 'vm', operation: 'create', cpu: 999, memMb: 512 } },
    ])
    const run = await host.run(wf, { rds: { baseUrl: mgr.baseUrl, apiKey: mgr.apiKey }, bad: { baseUrl: mgr.baseUrl, apiKey: 'not-the-key' } })
    const items = run.data.resultData.runData['Wrong Key']?.[0]?.data?.main?.[0] ?? []
    expect(items.map((i) => i.json)).toEqual([{ error: expect.any(String), code: 'unauthorized', httpCode: '401' }])
    expect(run.status).toBe('error')
    const error = run.data.resultData.error as unknown as { name: string; message: string; httpCode: string; description: string; context: { code: string }; node: { name: string } }
    expect(error).toMatchObject({ name: 'NodeApiError', httpCode: '400', context: { code: 'invalid_cpu' }, node: { name: 'Too Many CPUs' } })
    expect(error.message).toMatch(/^Invalid cpu \(maxCpu=\d+\)$/)
    expect(error.description).toContain('invalid_cpu')
    // Nothing was created by the refused call.
    const vms = (await mgr.request<{ cpu: number }[]>('GET', '/v1/vms')).body
    expect(vms.filter((v) => v.cpu === 999)).toEqual([])
  })
})
