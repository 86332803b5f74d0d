import type { IDataObject, IExecuteFunctions } from 'n8n-workflow'
import { NodeOperationError } from 'n8n-workflow'
import { apiJson } from '../api-request.js'
import { encodePath } from './parameters.js'

export async function executeSnapshot(ctx: IExecuteFunctions, operation: string, i: number): Promise<IDataObject | IDataObject[]> {
  switch (operation) {
    case 'list':
      return apiJson<IDataObject[]>(ctx, { method: 'GET', path: '/v1/snapshots', qs: { scope: ctx.getNodeParameter('scope', i, 'user') as string }, itemIndex: i })
    case 'createFromVm':
      return apiJson(ctx, { method: 'POST', path: `/v1/vms/${encodePath(ctx.getNodeParameter('vmId', i) as string)}/snapshots`, itemIndex: i })
    case 'get':
      return apiJson(ctx, { method: 'GET', path: `/v1/snapshots/${encodePath(ctx.getNodeParameter('snapshotId', i) as string)}`, itemIndex: i })
    case 'delete': {
      const snapshotId = ctx.getNodeParameter('snapshotId', i) as string
      await apiJson(ctx, { method: 'DELETE', path: `/v1/snapshots/${encodePath(snapshotId)}`, itemIndex: i })
      return { success: true, snapshotId }
    }
  }
  throw new NodeOperationError(ctx.getNode(), `Unknown snapshot operation "${operation}"`, { itemIndex: i })
}
