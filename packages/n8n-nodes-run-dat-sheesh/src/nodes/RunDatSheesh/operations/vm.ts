import type { IDataObject, IExecuteFunctions } from 'n8n-workflow'
import { NodeOperationError } from 'n8n-workflow'
import { apiJson } from '../api-request.js'
import { commaList, encodePath, keyValueList, keyValueObject } from './parameters.js'

function createBody(ctx: IExecuteFunctions, i: number): IDataObject {
  const extra = ctx.getNodeParameter('additionalFields', i, {}) as IDataObject
  const body: IDataObject = {
    cpu: ctx.getNodeParameter('cpu', i) as number,
    memMb: ctx.getNodeParameter('memMb', i) as number,
    allowIps: commaList(ctx.getNodeParameter('allowIps', i, '')),
    outboundInternet: ctx.getNodeParameter('outboundInternet', i, false) as boolean,
  }
  if (extra.imageId) body.imageId = extra.imageId
  if (extra.snapshotId) body.snapshotId = extra.snapshotId
  if (extra.diskSizeMb) body.diskSizeMb = extra.diskSizeMb
  if (extra.acceptSnapshotSecrets) body.acceptSnapshotSecrets = true
  const domains = commaList(extra.allowDomains)
  if (domains.length) body.allowDomains = domains
  const secretEnv = keyValueList(ctx.getNodeParameter('secretEnv', i, {}))
  if (secretEnv.length) body.secretEnv = secretEnv
  const links = ((ctx.getNodeParameter('peerLinks', i, {}) as IDataObject).links ?? []) as IDataObject[]
  if (links.length) body.peerLinks = links.map((l) => ({ alias: l.alias, vmId: l.vmId, sourceMode: l.sourceMode ?? 'hidden' }))
  return body
}

function runBody(ctx: IExecuteFunctions, i: number, operation: 'exec' | 'runTs' | 'runJs'): IDataObject {
  const options = ctx.getNodeParameter('options', i, {}) as IDataObject
  const env = ctx.getNodeParameter('env', i, {})
  const body: IDataObject = {}
  if (options.timeoutMs) body.timeoutMs = options.timeoutMs
  if (operation === 'exec') {
    body.cmd = ctx.getNodeParameter('cmd', i) as string
    if (options.cwd) body.cwd = options.cwd
    const e = keyValueObject(env)
    if (Object.keys(e).length) body.env = e
    return body
  }
  if (ctx.getNodeParameter('source', i, 'code') === 'path') body.path = ctx.getNodeParameter('path', i) as string
  else body.code = ctx.getNodeParameter('code', i) as string
  const args = options.args as string[] | undefined
  if (args?.length) body.args = args
  const e = keyValueList(env)
  if (e.length) body.env = e
  return body
}

/** One item's VM operation; the answer's JSON becomes the output item(s). */
export async function executeVm(ctx: IExecuteFunctions, operation: string, i: number): Promise<IDataObject | IDataObject[]> {
  if (operation === 'list') return apiJson<IDataObject[]>(ctx, { method: 'GET', path: '/v1/vms', itemIndex: i })
  if (operation === 'create') return apiJson(ctx, { method: 'POST', path: '/v1/vms', body: createBody(ctx, i), itemIndex: i })

  const vmId = ctx.getNodeParameter('vmId', i) as string
  if (!vmId.trim()) throw new NodeOperationError(ctx.getNode(), 'VM ID is empty', { itemIndex: i })
  const base = `/v1/vms/${encodePath(vmId)}`
  const done = async (method: 'POST' | 'DELETE', path: string, body?: IDataObject) => {
    await apiJson(ctx, { method, path, body, itemIndex: i })
    return { success: true, vmId }
  }
  switch (operation) {
    case 'get':
      return apiJson(ctx, { method: 'GET', path: base, itemIndex: i })
    case 'start':
    case 'stop':
    case 'pause':
    case 'resume':
      return done('POST', `${base}/${operation}`)
    case 'destroy':
      return done('DELETE', base)
    case 'exec':
      return apiJson(ctx, { method: 'POST', path: `${base}/exec`, body: runBody(ctx, i, 'exec'), itemIndex: i })
    case 'runTs':
      return apiJson(ctx, { method: 'POST', path: `${base}/run-ts`, body: runBody(ctx, i, 'runTs'), itemIndex: i })
    case 'runJs':
      return apiJson(ctx, { method: 'POST', path: `${base}/run-js`, body: runBody(ctx, i, 'runJs'), itemIndex: i })
    case 'getNetwork':
      return apiJson(ctx, { method: 'GET', path: `${base}/network`, itemIndex: i })
    case 'updateNetwork':
      return apiJson(ctx, {
        method: 'PATCH',
        path: `${base}/network`,
        body: {
          allowIps: commaList(ctx.getNodeParameter('allowIps', i, '')),
          allowDomains: commaList(ctx.getNodeParameter('allowDomains', i, '')),
          outboundInternet: ctx.getNodeParameter('outboundInternet', i, false) as boolean,
        },
        itemIndex: i,
      })
    case 'addPeer':
      return apiJson(ctx, {
        method: 'POST',
        path: `${base}/peers`,
        body: { alias: ctx.getNodeParameter('alias', i) as string, vmId: ctx.getNodeParameter('providerVmId', i) as string, sourceMode: ctx.getNodeParameter('sourceMode', i, 'hidden') as string },
        itemIndex: i,
      })
    case 'removePeer':
      return done('DELETE', `${base}/peers/${encodePath(ctx.getNodeParameter('alias', i) as string)}`)
    case 'setPeerSourceMode':
      await apiJson(ctx, {
        method: 'PATCH',
        path: `${base}/peers/${encodePath(ctx.getNodeParameter('alias', i) as string)}`,
        body: { sourceMode: ctx.getNodeParameter('sourceMode', i) as string },
        itemIndex: i,
      })
      return { success: true, vmId }
    case 'syncPeers':
      return done('POST', `${base}/peers/sync`)
  }
  throw new NodeOperationError(ctx.getNode(), `Unknown VM operation "${operation}"`, { itemIndex: i })
}
