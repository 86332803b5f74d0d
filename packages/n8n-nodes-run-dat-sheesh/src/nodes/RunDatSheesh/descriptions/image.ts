import type { INodeProperties } from 'n8n-workflow'

export const imageProperties: INodeProperties[] = [
  {
    displayName: 'Operation',
    name: 'operation',
    type: 'options',
    noDataExpression: true,
    displayOptions: { show: { resource: ['image'] } },
    options: [{ name: 'List', value: 'list', description: 'List guest images', action: 'List images' }],
    default: 'list',
  },
]
