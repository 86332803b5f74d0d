// The original package's node, under its type name and display name so workflows made for it keep
// loading; resources and operations are the original's plus ours (network policy, pause/resume,
// secretEnv, peers, single-file read/write/list/delete, snapshot get/delete).
import type { IDataObject, IExecuteFunctions, INodeExecutionData, INodeType, INodeTypeDescription } from 'n8n-workflow'
import { NodeApiError, NodeConnectionTypes } from 'n8n-workflow'
import { CREDENTIAL_TYPE } from './api-request.js'
import { fileProperties } from './descriptions/file.js'
import { imageProperties } from './descriptions/image.js'
import { snapshotProperties } from './descriptions/snapshot.js'
import { vmProperties } from './descriptions/vm.js'
import { executeFile } from './operations/file.js'
import { executeImage } from './operations/image.js'
import { executeSnapshot } from './operations/snapshot.js'
import { executeVm } from './operations/vm.js'

function asItems(out: IDataObject | IDataObject[], i: number): INodeExecutionData[] {
  return (Array.isArray(out) ? out : [out]).map((json) => ({ json, pairedItem: { item: i } }))
}

export class RunDatSheesh implements INodeType {
  description: INodeTypeDescription = {
    displayName: 'Run Dat sheesh',
    name: 'runDatSheesh',
    icon: 'file:runDatSheesh.svg',
    group: ['transform'],
    version: 1,
    subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
    description: 'Run untrusted code in microVM sandboxes: create VMs, execute commands, TypeScript and JavaScript, move files, take snapshots',
    defaults: { name: 'Run Dat sheesh' },
    inputs: [NodeConnectionTypes.Main],
    outputs: [NodeConnectionTypes.Main],
    usableAsTool: true,
    credentials: [{ name: CREDENTIAL_TYPE, required: true }],
    properties: [
      {
        displayName: 'Resource',
        name: 'resource',
        type: 'options',
        noDataExpression: true,
        options: [
          { name: 'File', value: 'file' },
          { name: 'Image', value: 'image' },
          { name: 'Snapshot', value: 'snapshot' },
          { name: 'VM', value: 'vm' },
        ],
        default: 'vm',
      },
      ...vmProperties,
      ...fileProperties,
      ...snapshotProperties,
      ...imageProperties,
    ],
  }

  async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
    const items = this.getInputData()
    const out: INodeExecutionData[] = []
    for (let i = 0; i < items.length; i++) {
      const resource = this.getNodeParameter('resource', i) as string
      const operation = this.getNodeParameter('operation', i) as string
      try {
        if (resource === 'vm') out.push(...asItems(await executeVm(this, operation, i), i))
        else if (resource === 'snapshot') out.push(...asItems(await executeSnapshot(this, operation, i), i))
        else if (resource === 'image') out.push(...asItems(await executeImage(this, operation, i), i))
        else if (resource === 'file') {
          const r = await executeFile(this, operation, i)
          out.push(...(Array.isArray(r) ? r : [r]))
        }
      } catch (error) {
        if (!this.continueOnFail()) throw error
        // The item carries the refusal instead, so a workflow can branch on the API's code.
        const e = error as Error & { context?: IDataObject; httpCode?: string | null }
        out.push({
          json: { error: e.message, code: (e.context?.code as string | undefined) ?? null, httpCode: error instanceof NodeApiError ? e.httpCode : null },
          pairedItem: { item: i },
        })
      }
    }
    return [out]
  }
}

/** The original package also exported the class under this name (a historical file-name typo). */
export { RunDatSheesh as RunDatsheesh }
