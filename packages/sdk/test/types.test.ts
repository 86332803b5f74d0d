// The SDK's hand-written types against the API's generated document (docs/openapi.json): each
// key list below must name exactly the type's keys (the compiler checks that), and the test checks
// they are exactly the schema's properties. A field added to the API and not to the SDK, or the
// other way round, fails here.
import fs from 'node:fs'
import { expect, it } from 'vitest'
import type { CreateOptions, ExecResult, FileEntry, ImageInfo, NetworkInfo, PortPublicState, PreviewUrl, RunResult, SetupStep, SnapshotInfo, SpawnOptions, TemplateDefinition, TemplateInfo, VmInfo } from '../src/types.ts'

const doc = JSON.parse(fs.readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8'))
const schemaOf = (path: string, method: string, status?: string) => {
  const op = doc.paths[path][method]
  const content = status ? op.responses[status].content : op.requestBody.content
  return content['application/json'].schema as { properties: Record<string, unknown>; required?: string[] }
}
const keys = (o: object) => Object.keys(o).sort()

it('VmInfo is the VM of GET /v1/vms/{id}', () => {
  const k: Record<keyof VmInfo, true> = { id: true, state: true, cpu: true, memMb: true, imageId: true, guestIp: true, allowIps: true, allowDomains: true, outboundInternet: true, provisionMode: true, sourceSnapshotId: true, createdAt: true, startedAt: true, bootMs: true, lastError: true, createdBy: true, peerLinks: true, labels: true, expiresAt: true, ttlSeconds: true, onExpire: true }
  expect(keys(k)).toEqual(keys(schemaOf('/v1/vms/{id}', 'get', '200').properties))
})

it('CreateOptions are the body of POST /v1/vms (less the original\'s aliases the SDK does not offer)', () => {
  const k: Record<keyof CreateOptions, true> = { cpu: true, memMb: true, allowIps: true, allowDomains: true, outboundInternet: true, imageId: true, snapshotId: true, acceptSnapshotSecrets: true, secretEnv: true, peerLinks: true, ttlSeconds: true, onExpire: true, labels: true }
  const body = keys(schemaOf('/v1/vms', 'post').properties).filter((p) => !['userOverlaySnapshotId', 'diskSizeMb'].includes(p))
  expect(keys(k)).toEqual(body)
})

it('ExecResult and RunResult are the answers of exec and run-ts', () => {
  const exec: Record<keyof ExecResult, true> = { exitCode: true, stdout: true, stderr: true, timedOut: true, stdoutTruncated: true, stderrTruncated: true, durationMs: true }
  expect(keys(exec)).toEqual(keys(schemaOf('/v1/vms/{id}/exec', 'post', '200').properties))
  const run: Record<keyof RunResult, true> = { ...exec, result: true, error: true }
  expect(keys(run)).toEqual(keys(schemaOf('/v1/vms/{id}/run-ts', 'post', '200').properties))
})

it('SnapshotInfo is a subset of the snapshot answer; NetworkInfo is the network answer', () => {
  const snap: Record<keyof SnapshotInfo, true> = { id: true, kind: true, createdAt: true, cpu: true, memMb: true, imageId: true, sourceVmId: true, containsSecrets: true, pauseMs: true, createdBy: true }
  const props = schemaOf('/v1/vms/{id}/snapshots', 'post', '201').properties
  for (const key of keys(snap)) expect(props).toHaveProperty(key)
  const net: Record<keyof NetworkInfo, true> = { guestIp: true, gateway: true, mac: true, allowIps: true, allowDomains: true, outboundInternet: true, effective: true }
  expect(keys(net)).toEqual(keys(schemaOf('/v1/vms/{id}/network', 'get', '200').properties))
})

it('FileEntry is an entry of GET /v1/vms/{id}/files/list', () => {
  const k: Record<keyof FileEntry, true> = { name: true, path: true, type: true, size: true, mode: true, mtime: true }
  const list = doc.paths['/v1/vms/{id}/files/list'].get.responses['200'].content['application/json'].schema
  expect(keys(k)).toEqual(keys(list.items.properties))
})

it('PreviewUrl and PortPublicState are the answers of the preview routes', () => {
  const url: Record<keyof PreviewUrl, true> = { url: true, expiresAt: true, public: true }
  expect(keys(url)).toEqual(keys(schemaOf('/v1/vms/{id}/ports/{port}/url', 'get', '200').properties))
  const pub: Record<keyof PortPublicState, true> = { port: true, public: true, url: true }
  expect(keys(pub)).toEqual(keys(schemaOf('/v1/vms/{id}/ports/{port}/public', 'post', '200').properties))
})

it('ImageInfo is an image of GET /v1/images, its seeds each a seed shape', () => {
  const k: Record<keyof ImageInfo, true> = { id: true, name: true, description: true, createdAt: true, kernelFilename: true, initrdFilename: true, rootfsFilename: true, baseRootfsBytes: true, kernelUploadedAt: true, rootfsUploadedAt: true, seedSnapshotId: true, seedStatus: true, seedUpdatedAt: true, seedError: true, seeds: true, isDefault: true, hasKernel: true, hasInitrd: true, hasRootfs: true, manifest: true, createdBy: true }
  const item = doc.paths['/v1/images'].get.responses['200'].content['application/json'].schema.items
  expect(keys(k)).toEqual(keys(item.properties))
  const seed: Record<keyof ImageInfo['seeds'][number], true> = { cpu: true, memMb: true, status: true, snapshotId: true, error: true, updatedAt: true, lastUsedAt: true }
  expect(keys(seed)).toEqual(keys(item.properties.seeds.items.properties))
})

it('TemplateInfo is GET /v1/templates/{name}; TemplateDefinition the body of its PUT; SpawnOptions the body of a spawn', () => {
  const def: Record<keyof TemplateDefinition, true> = { imageId: true, cpu: true, memMb: true, setup: true, env: true, allowIps: true, allowDomains: true, outboundInternet: true, setupTimeoutMs: true }
  expect(keys(def)).toEqual(keys(schemaOf('/v1/templates/{name}', 'put').properties))
  expect(keys({ ...def, name: true })).toEqual(keys(schemaOf('/v1/templates', 'post').properties))
  const info: Record<keyof TemplateInfo, true> = { ...def, name: true, status: true, hasFiles: true, snapshotId: true, builtImageId: true, builtAt: true, error: true, setupOutput: true, createdAt: true, updatedAt: true, createdBy: true }
  const answer = schemaOf('/v1/templates/{name}', 'get', '200') as { properties: Record<string, any> }
  expect(keys(info)).toEqual(keys(answer.properties))
  const step: Record<keyof SetupStep, true> = { cmd: true, exitCode: true, timedOut: true, durationMs: true, stdout: true, stderr: true }
  expect(keys(step)).toEqual(keys(answer.properties.setupOutput.items.properties))
  const spawn: Record<keyof SpawnOptions, true> = { allowIps: true, allowDomains: true, outboundInternet: true, secretEnv: true, peerLinks: true, ttlSeconds: true, onExpire: true, labels: true }
  expect(keys(spawn)).toEqual(keys(schemaOf('/v1/templates/{name}/vms', 'post').properties))
})
