// A minimal n8n host around n8n's own engine: our package is loaded by n8n-core's
// PackageDirectoryLoader from its built dist/ (as n8n loads an installed community package), the
// workflow is an n8n-workflow Workflow, and n8n-core's WorkflowExecute runs it in manual mode.
// What the host provides is what n8n's CLI provides: the node types registry, credentials, and the
// execution's additional data.
import { randomBytes, randomUUID } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type {
  ICredentialDataDecryptedObject,
  IConnections,
  IDataObject,
  INode,
  INodeType,
  INodeTypes,
  IRun,
  IVersionedNodeType,
  IWorkflowBase,
  IWorkflowExecuteAdditionalData,
} from 'n8n-workflow'
import { credentialTestNode, credentialTestNodeType } from './credential-test-node.ts'
import { InMemoryCredentialsHelper } from './credentials-helper.ts'
import { MANUAL_TRIGGER_TYPE, ManualTrigger } from './manual-trigger.ts'
import { n8nCore, n8nWorkflow } from './n8n-libraries.ts'

const { ExecutionLifecycleHooks, PackageDirectoryLoader, WorkflowExecute } = n8nCore
const { NodeHelpers, Workflow } = n8nWorkflow

class NodeTypes implements INodeTypes {
  private readonly types: Record<string, INodeType | IVersionedNodeType>

  constructor(types: Record<string, INodeType | IVersionedNodeType>) {
    this.types = types
  }

  getByName(nodeType: string): INodeType | IVersionedNodeType {
    const t = this.types[nodeType]
    if (!t) throw new Error(`unknown node type ${nodeType}`)
    return t
  }

  getByNameAndVersion(nodeType: string, version?: number): INodeType {
    return NodeHelpers.getVersionedNodeType(this.getByName(nodeType), version)
  }

  getKnownTypes(): IDataObject {
    return {}
  }
}

export interface WorkflowJson {
  name: string
  nodes: INode[]
  connections: IConnections
}

export interface N8nHost {
  /** The package's node types by their full type name (package name + node name), as n8n names them. */
  nodeTypes: NodeTypes
  loader: InstanceType<typeof PackageDirectoryLoader>
  /** Runs the workflow from its manual trigger; credentials by the id the nodes reference. */
  run(workflow: WorkflowJson, credentials: Record<string, ICredentialDataDecryptedObject>): Promise<IRun>
  /** Runs a credential type's test request with these values, as n8n does when a credential is saved. */
  testCredential(type: string, data: ICredentialDataDecryptedObject): Promise<IRun>
  /** Removes the host's n8n folder. */
  close(): void
}

export async function n8nHost(packageDir: string): Promise<N8nHost> {
  // n8n-core keeps its instance settings under ~/.n8n unless told otherwise: a throwaway folder
  // and a key of our own, so a run leaves nothing in the home directory.
  const userFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-n8n-'))
  process.env.N8N_USER_FOLDER = userFolder
  process.env.N8N_ENCRYPTION_KEY ??= randomBytes(24).toString('hex')
  // The errors a test provokes are asserted on; n8n's logger would print each with its stack.
  process.env.N8N_LOG_LEVEL ??= 'silent'
  const loader = new PackageDirectoryLoader(packageDir)
  await loader.loadAll()
  const types: Record<string, INodeType | IVersionedNodeType> = { [MANUAL_TRIGGER_TYPE]: new ManualTrigger() }
  for (const [name, { type }] of Object.entries(loader.nodeTypes)) types[`${loader.packageName}.${name}`] = type
  const nodeTypes = new NodeTypes(types)
  const credentialTypes = Object.values(loader.credentialTypes).map((c) => c.type)
  for (const c of credentialTypes) if (c.test) types[credentialTestNodeType(c.name)] = credentialTestNode(c)

  async function run(json: WorkflowJson, credentials: Record<string, ICredentialDataDecryptedObject>): Promise<IRun> {
    const workflow = new Workflow({ id: randomUUID(), name: json.name, nodes: json.nodes, connections: json.connections, active: false, nodeTypes, settings: { executionOrder: 'v1' } })
    const executionId = randomUUID()
    const workflowData: IWorkflowBase = { id: workflow.id, name: json.name, nodes: json.nodes, connections: json.connections, active: false, isArchived: false, activeVersionId: null, createdAt: new Date(), updatedAt: new Date(), settings: { executionOrder: 'v1' } } as IWorkflowBase
    const additionalData = {
      credentialsHelper: new InMemoryCredentialsHelper(credentialTypes, credentials),
      hooks: new ExecutionLifecycleHooks('manual', executionId, workflowData),
      executionId,
      currentNodeExecutionIndex: 0,
      variables: {},
      restApiUrl: 'http://127.0.0.1:5678/rest',
      instanceBaseUrl: 'http://127.0.0.1:5678',
      // Where n8n would serve these; nothing in these workflows calls them.
      formBaseUrl: 'http://127.0.0.1:5678/form',
      formWaitingBaseUrl: 'http://127.0.0.1:5678/form-waiting',
      formTestBaseUrl: 'http://127.0.0.1:5678/form-test',
      webhookBaseUrl: 'http://127.0.0.1:5678/webhook',
      webhookWaitingBaseUrl: 'http://127.0.0.1:5678/webhook-waiting',
      webhookTestBaseUrl: 'http://127.0.0.1:5678/webhook-test',
      mcpBaseUrl: 'http://127.0.0.1:5678/mcp',
      mcpTestBaseUrl: 'http://127.0.0.1:5678/mcp-test',
      logAiEvent: () => {},
      getRunExecutionData: async () => undefined,
      getRuntimeCredential: async () => undefined,
      executeWorkflow: async () => {
        throw new Error('sub-workflows are not part of this host')
      },
      startRunnerTask: async () => {
        throw new Error('task runners are not part of this host')
      },
    } as unknown as IWorkflowExecuteAdditionalData
    const trigger = json.nodes.find((n) => n.type === MANUAL_TRIGGER_TYPE)
    if (!trigger) throw new Error('the workflow has no manual trigger')
    return await new WorkflowExecute(additionalData, 'manual').run({ workflow, startNode: trigger })
  }

  async function testCredential(type: string, data: ICredentialDataDecryptedObject): Promise<IRun> {
    const nodes: INode[] = [
      { id: 'start', name: 'Start', type: MANUAL_TRIGGER_TYPE, typeVersion: 1, position: [0, 0], parameters: {} },
      { id: 'test', name: 'Credential Test', type: credentialTestNodeType(type), typeVersion: 1, position: [200, 0], parameters: {}, credentials: { [type]: { id: 'tested', name: 'tested' } } },
    ]
    return await run({ name: `test ${type}`, nodes, connections: { Start: { main: [[{ node: 'Credential Test', type: 'main', index: 0 }]] } } }, { tested: data })
  }

  return { nodeTypes, loader, run, testCredential, close: () => fs.rmSync(userFolder, { recursive: true, force: true }) }
}
