// The part of n8n's CLI that n8n-core asks for credentials (n8n-core only declares it): holds the
// test's decrypted credentials in memory and applies a credential type's generic `authenticate`
// rule the way the CLI does, resolving its `={{$credentials.…}}` expressions with the workflow's
// own expression engine. Nothing of the node under test is bypassed: the node still calls
// httpRequestWithAuthentication and n8n-core calls this.
import type {
  ICredentialDataDecryptedObject,
  ICredentialType,
  IHttpRequestOptions,
  INode,
  INodeCredentialsDetails,
  INodeProperties,
  IRequestOptionsSimplified,
  Workflow,
} from 'n8n-workflow'
import { n8nWorkflow } from './n8n-libraries.ts'

export class InMemoryCredentialsHelper extends n8nWorkflow.ICredentialsHelper {
  private readonly types: Map<string, ICredentialType>
  private readonly data: Map<string, ICredentialDataDecryptedObject>

  constructor(types: ICredentialType[], data: Record<string, ICredentialDataDecryptedObject>) {
    super()
    this.types = new Map(types.map((t) => [t.name, t]))
    this.data = new Map(Object.entries(data))
  }

  private type(name: string): ICredentialType {
    const t = this.types.get(name)
    if (!t) throw new Error(`unknown credential type ${name}`)
    return t
  }

  getParentTypes(name: string): string[] {
    return this.type(name).extends ?? []
  }

  isCredentialUsableByNode(): boolean {
    return true
  }

  async authenticate(credentials: ICredentialDataDecryptedObject, typeName: string, requestOptions: IHttpRequestOptions | IRequestOptionsSimplified, workflow?: Workflow, node?: INode): Promise<IHttpRequestOptions> {
    const { authenticate } = this.type(typeName)
    const options = requestOptions as IHttpRequestOptions & Record<string, unknown>
    if (!authenticate || typeof authenticate !== 'object' || authenticate.type !== 'generic') return options
    if (!workflow || !node) throw new Error('generic authentication needs the workflow and node')
    const resolve = (v: unknown) =>
      typeof v === 'string' && v.startsWith('=')
        ? workflow.expression.getSimpleParameterValue(node, v, 'internal', { $credentials: credentials }, undefined, '')
        : v
    for (const [where, entries] of Object.entries(authenticate.properties)) {
      const target = ((options[where] as Record<string, unknown> | undefined) ??= {})
      for (const [k, v] of Object.entries(entries as Record<string, unknown>)) target[String(resolve(k))] = resolve(v)
    }
    return options
  }

  async preAuthentication(): Promise<undefined> {
    return undefined
  }

  async runPreAuthentication(): Promise<undefined> {
    return undefined
  }

  async getCredentials(): Promise<never> {
    throw new Error('encrypted credentials are not used by this host')
  }

  async getDecrypted(_additionalData: unknown, nodeCredentials: INodeCredentialsDetails, type: string): Promise<ICredentialDataDecryptedObject> {
    const d = this.data.get(nodeCredentials.id ?? '')
    if (!d) throw new Error(`no ${type} credential with id ${nodeCredentials.id}`)
    return { ...d }
  }

  async updateCredentials(): Promise<void> {}

  async updateCredentialsOauthTokenData(): Promise<void> {}

  getCredentialsProperties(type: string): INodeProperties[] {
    return this.type(type).properties
  }
}
