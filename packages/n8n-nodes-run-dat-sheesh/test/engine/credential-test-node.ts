// How n8n tests a credential (the CLI's credentials tester): the credential type's `test` request
// becomes the routing of a declarative node, which n8n-core's RoutingNode sends with the
// credential applied. This builds that node for one credential type.
import type { ICredentialType, INodeType } from 'n8n-workflow'

export const credentialTestNodeType = (credential: string) => `credential-test.${credential}`

export function credentialTestNode(credential: ICredentialType): INodeType {
  if (!credential.test) throw new Error(`credential ${credential.name} has no test request`)
  return {
    description: {
      displayName: `Test ${credential.displayName}`,
      name: credentialTestNodeType(credential.name),
      group: ['transform'],
      version: 1,
      description: 'The credential test n8n runs when a credential is saved',
      defaults: { name: 'Credential Test' },
      inputs: ['main'],
      outputs: ['main'],
      credentials: [{ name: credential.name, required: true }],
      requestDefaults: {},
      properties: [{ displayName: 'Test', name: 'test', type: 'string', default: '', routing: { request: credential.test.request } }],
    },
  }
}
