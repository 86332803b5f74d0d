import type { IDataObject, IExecuteFunctions } from 'n8n-workflow'
import { NodeOperationError } from 'n8n-workflow'
import { apiJson } from '../api-request.js'

export async function executeImage(ctx: IExecuteFunctions, operation: string, i: number): Promise<IDataObject[]> {
  if (operation === 'list') return apiJson<IDataObject[]>(ctx, { method: 'GET', path: '/v1/images', itemIndex: i })
  throw new NodeOperationError(ctx.getNode(), `Unknown image operation "${operation}"`, { itemIndex: i })
}
