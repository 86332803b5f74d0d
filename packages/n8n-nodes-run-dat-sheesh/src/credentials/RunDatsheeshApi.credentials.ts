// The original package's credential, under the original's name and field names so that workflows
// and stored credentials made for it keep working. n8n adds the key to every request the node
// makes through httpRequestWithAuthentication, so the key never passes through the node's code.
import type { IAuthenticateGeneric, ICredentialTestRequest, ICredentialType, INodeProperties } from 'n8n-workflow'

export class RunDatsheeshApi implements ICredentialType {
  name = 'runDatsheeshApi'

  displayName = 'Run Dat sheesh API'

  icon = 'file:runDatSheesh.svg' as const

  properties: INodeProperties[] = [
    {
      displayName: 'Base URL',
      name: 'baseUrl',
      type: 'string',
      default: 'http://localhost:3000',
      placeholder: 'http://localhost:3000',
      description: 'Where the run-dat-sheesh manager answers (without /v1)',
      required: true,
    },
    {
      displayName: 'API Key',
      name: 'apiKey',
      type: 'string',
      typeOptions: { password: true },
      default: '',
      description: 'The manager\'s API_KEY, or a key minted in its console (rds_…)',
      required: true,
    },
  ]

  authenticate: IAuthenticateGeneric = {
    type: 'generic',
    properties: {
      headers: { 'X-API-Key': '={{$credentials.apiKey}}' },
    },
  }

  // Listing VMs needs a valid key and nothing else, and changes nothing.
  test: ICredentialTestRequest = {
    request: {
      baseURL: '={{$credentials.baseUrl}}',
      url: '/v1/vms',
      method: 'GET',
    },
  }
}
