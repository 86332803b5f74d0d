import type { IDataObject, IExecuteFunctions, INodeExecutionData } from 'n8n-workflow'
import { NodeOperationError } from 'n8n-workflow'
import { apiJson, apiRequest, bodyBytes } from '../api-request.js'
import { encodePath } from './parameters.js'

const baseName = (p: string) => p.replace(/\/+$/, '').split('/').pop() || 'workspace'

/** One item's file operation. Bytes travel as n8n binary data, so any node can produce or consume them. */
export async function executeFile(ctx: IExecuteFunctions, operation: string, i: number): Promise<INodeExecutionData | INodeExecutionData[]> {
  const vmId = ctx.getNodeParameter('vmId', i) as string
  if (!vmId.trim()) throw new NodeOperationError(ctx.getNode(), 'VM ID is empty', { itemIndex: i })
  const base = `/v1/vms/${encodePath(vmId)}`

  if (operation === 'upload') {
    const dest = ctx.getNodeParameter('dest', i) as string
    const prop = ctx.getNodeParameter('binaryPropertyName', i) as string
    ctx.helpers.assertBinaryData(i, prop)
    const bytes = await ctx.helpers.getBinaryDataBuffer(i, prop)
    await apiRequest(ctx, { method: 'POST', path: `${base}/files/upload`, qs: { dest }, body: bytes, contentType: 'application/gzip', itemIndex: i })
    return { json: { success: true, vmId, dest, bytes: bytes.length }, pairedItem: { item: i } }
  }

  const path = ctx.getNodeParameter('path', i) as string
  switch (operation) {
    case 'download': {
      const prop = ctx.getNodeParameter('binaryPropertyName', i) as string
      const res = await apiRequest(ctx, { method: 'GET', path: `${base}/files/download`, qs: { path }, binary: true, itemIndex: i })
      const bytes = bodyBytes(res)
      const data = await ctx.helpers.prepareBinaryData(bytes, `${baseName(path)}.tar.gz`, 'application/gzip')
      return { json: { vmId, path, bytes: bytes.length }, binary: { [prop]: data }, pairedItem: { item: i } }
    }
    case 'read': {
      const res = await apiRequest(ctx, { method: 'GET', path: `${base}/files`, qs: { path }, binary: true, itemIndex: i })
      const bytes = bodyBytes(res)
      if (ctx.getNodeParameter('outputDataType', i, 'binary') === 'text') {
        return { json: { vmId, path, bytes: bytes.length, content: bytes.toString('utf8') }, pairedItem: { item: i } }
      }
      const prop = ctx.getNodeParameter('binaryPropertyName', i) as string
      const data = await ctx.helpers.prepareBinaryData(bytes, baseName(path))
      return { json: { vmId, path, bytes: bytes.length }, binary: { [prop]: data }, pairedItem: { item: i } }
    }
    case 'write': {
      let bytes: Buffer
      if (ctx.getNodeParameter('inputDataType', i, 'text') === 'binary') {
        const prop = ctx.getNodeParameter('binaryPropertyName', i) as string
        ctx.helpers.assertBinaryData(i, prop)
        bytes = await ctx.helpers.getBinaryDataBuffer(i, prop)
      } else {
        bytes = Buffer.from(ctx.getNodeParameter('content', i, '') as string, 'utf8')
      }
      const mode = (ctx.getNodeParameter('mode', i, '') as string).trim()
      await apiRequest(ctx, { method: 'PUT', path: `${base}/files`, qs: mode ? { path, mode } : { path }, body: bytes, itemIndex: i })
      return { json: { success: true, vmId, path, bytes: bytes.length }, pairedItem: { item: i } }
    }
    case 'list': {
      const depth = ctx.getNodeParameter('depth', i, 1) as number
      const entries = await apiJson<IDataObject[]>(ctx, { method: 'GET', path: `${base}/files/list`, qs: { path, depth }, itemIndex: i })
      return entries.map((e) => ({ json: e, pairedItem: { item: i } }))
    }
    case 'delete': {
      const recursive = ctx.getNodeParameter('recursive', i, false) as boolean
      await apiRequest(ctx, { method: 'DELETE', path: `${base}/files`, qs: recursive ? { path, recursive: true } : { path }, itemIndex: i })
      return { json: { success: true, vmId, path }, pairedItem: { item: i } }
    }
  }
  throw new NodeOperationError(ctx.getNode(), `Unknown file operation "${operation}"`, { itemIndex: i })
}
