import type { INodeProperties } from 'n8n-workflow'
import { vmIdField } from './shared-fields.js'

export const snapshotProperties: INodeProperties[] = [
  {
    displayName: 'Operation',
    name: 'operation',
    type: 'options',
    noDataExpression: true,
    displayOptions: { show: { resource: ['snapshot'] } },
    options: [
      { name: 'Create From VM', value: 'createFromVm', description: 'Snapshot a running VM (memory, processes and disk); the VM goes on running', action: 'Create a snapshot from a VM' },
      { name: 'Delete', value: 'delete', description: 'Delete a snapshot', action: 'Delete a snapshot' },
      { name: 'Get', value: 'get', description: 'Get one snapshot', action: 'Get a snapshot' },
      { name: 'List', value: 'list', description: 'List snapshots', action: 'List snapshots' },
    ],
    default: 'list',
  },
  vmIdField('snapshot', ['createFromVm'], 'ID of the running VM to snapshot'),
  {
    displayName: 'Snapshot ID',
    name: 'snapshotId',
    type: 'string',
    required: true,
    default: '',
    displayOptions: { show: { resource: ['snapshot'], operation: ['get', 'delete'] } },
  },
  {
    displayName: 'Scope',
    name: 'scope',
    type: 'options',
    default: 'user',
    options: [
      { name: 'User', value: 'user', description: 'Snapshots taken through the API' },
      { name: 'Internal', value: 'internal', description: 'Image seed snapshots' },
      { name: 'All', value: 'all' },
    ],
    displayOptions: { show: { resource: ['snapshot'], operation: ['list'] } },
  },
]
