// Fields several resources ask for, defined once so their names (which workflows store) stay the same.
import type { INodeProperties } from 'n8n-workflow'

export function vmIdField(resource: string, operations: string[], description = 'ID of the VM'): INodeProperties {
  return {
    displayName: 'VM ID',
    name: 'vmId',
    type: 'string',
    required: true,
    default: '',
    placeholder: 'vm-…',
    description,
    displayOptions: { show: { resource: [resource], operation: operations } },
  }
}

export function binaryPropertyField(resource: string, operations: string[], description: string): INodeProperties {
  return {
    displayName: 'Binary Property',
    name: 'binaryPropertyName',
    type: 'string',
    required: true,
    default: 'data',
    description,
    displayOptions: { show: { resource: [resource], operation: operations } },
  }
}

/** Name/value pairs (env of a run, secretEnv of a create). */
export function keyValueCollection(name: string, displayName: string, description: string, secret = false): INodeProperties {
  return {
    displayName,
    name,
    type: 'fixedCollection',
    typeOptions: { multipleValues: true },
    default: {},
    description,
    options: [
      {
        displayName: 'Variable',
        name: 'variables',
        values: [
          { displayName: 'Name', name: 'name', type: 'string', default: '' },
          { displayName: 'Value', name: 'value', type: 'string', typeOptions: secret ? { password: true } : undefined, default: '' },
        ],
      },
    ],
  }
}

export const sourceModeOptions = [
  { name: 'Hidden', value: 'hidden', description: 'Manifest, README and proxies only' },
  { name: 'Mounted', value: 'mounted', description: 'Also a sanitized read-only copy of the provider\'s /workspace' },
]
