import type { INodeProperties } from 'n8n-workflow'
import { keyValueCollection, sourceModeOptions, vmIdField } from './shared-fields.js'

const show = (operation: string[]) => ({ show: { resource: ['vm'], operation } })
const BY_ID = ['get', 'start', 'stop', 'destroy', 'pause', 'resume', 'exec', 'runTs', 'runJs', 'getNetwork', 'updateNetwork', 'addPeer', 'removePeer', 'setPeerSourceMode', 'syncPeers']
const RUNS = ['runTs', 'runJs']

export const vmProperties: INodeProperties[] = [
  {
    displayName: 'Operation',
    name: 'operation',
    type: 'options',
    noDataExpression: true,
    displayOptions: { show: { resource: ['vm'] } },
    options: [
      { name: 'Add Peer', value: 'addPeer', description: 'Link a provider VM under an alias (/workspace/peers)', action: 'Add a peer link' },
      { name: 'Create', value: 'create', description: 'Create and boot a VM', action: 'Create a VM' },
      { name: 'Destroy', value: 'destroy', description: 'Delete a VM and everything it has on the host', action: 'Destroy a VM' },
      { name: 'Exec', value: 'exec', description: 'Run a shell command as the sandbox user', action: 'Execute a command in a VM' },
      { name: 'Get', value: 'get', description: 'Get a VM', action: 'Get a VM' },
      { name: 'Get Network Policy', value: 'getNetwork', description: 'The VM\'s address and the egress policy the host enforces', action: 'Get the network policy of a VM' },
      { name: 'List', value: 'list', description: 'List VMs', action: 'List VMs' },
      { name: 'Pause', value: 'pause', description: 'Freeze a running VM', action: 'Pause a VM' },
      { name: 'Remove Peer', value: 'removePeer', description: 'Remove a peer link', action: 'Remove a peer link' },
      { name: 'Resume', value: 'resume', description: 'Continue a paused VM', action: 'Resume a VM' },
      { name: 'Run JavaScript', value: 'runJs', description: 'Run JavaScript with Node', action: 'Run java script in a VM' },
      { name: 'Run TypeScript', value: 'runTs', description: 'Run TypeScript with Deno', action: 'Run type script in a VM' },
      { name: 'Set Peer Source Mode', value: 'setPeerSourceMode', description: 'Switch a peer link between hidden and mounted source', action: 'Set the source mode of a peer link' },
      { name: 'Start', value: 'start', description: 'Boot a stopped VM', action: 'Start a VM' },
      { name: 'Stop', value: 'stop', description: 'Shut a VM down, keeping its disk', action: 'Stop a VM' },
      { name: 'Sync Peers', value: 'syncPeers', description: 'Re-read every provider and rewrite /workspace/peers', action: 'Sync the peers of a VM' },
      { name: 'Update Network Policy', value: 'updateNetwork', description: 'Change the egress policy; applies at once', action: 'Update the network policy of a VM' },
    ],
    default: 'list',
  },
  vmIdField('vm', BY_ID),

  // create
  { displayName: 'CPU', name: 'cpu', type: 'number', typeOptions: { minValue: 1 }, default: 1, description: 'Number of vCPUs', displayOptions: show(['create']) },
  { displayName: 'Memory (MB)', name: 'memMb', type: 'number', typeOptions: { minValue: 128 }, default: 512, description: 'Guest memory in MiB', displayOptions: show(['create']) },
  {
    displayName: 'Allow IPs',
    name: 'allowIps',
    type: 'string',
    default: '',
    placeholder: '203.0.113.7, 198.51.100.0/24',
    description: 'Comma-separated IPv4 addresses or CIDRs the VM may reach; empty: Outbound Internet decides',
    displayOptions: show(['create', 'updateNetwork']),
  },
  {
    displayName: 'Outbound Internet',
    name: 'outboundInternet',
    type: 'boolean',
    default: false,
    description: 'Whether the VM may reach any public address (and resolve names) when Allow IPs is empty',
    displayOptions: show(['create', 'updateNetwork']),
  },
  {
    displayName: 'Additional Fields',
    name: 'additionalFields',
    type: 'collection',
    placeholder: 'Add Field',
    default: {},
    displayOptions: show(['create']),
    options: [
      { displayName: 'Accept Snapshot Secrets', name: 'acceptSnapshotSecrets', type: 'boolean', default: false, description: 'Whether to create from a snapshot whose memory holds secretEnv values of the VM it was taken of' },
      { displayName: 'Allow Domains', name: 'allowDomains', type: 'string', default: '', placeholder: 'api.example.com, *.example.org', description: 'Comma-separated host names the VM may resolve and reach' },
      { displayName: 'Disk Size (MB)', name: 'diskSizeMb', type: 'number', default: 512 },
      { displayName: 'Image ID', name: 'imageId', type: 'string', default: '', description: 'Defaults to the default image' },
      { displayName: 'Snapshot ID', name: 'snapshotId', type: 'string', default: '', description: 'Resume from this snapshot (processes, memory and disk as they were)' },
    ],
  },
  {
    ...keyValueCollection('secretEnv', 'Secret Environment', 'Secrets every run in this VM gets as environment variables; stored encrypted and never shown again', true),
    displayOptions: show(['create']),
  },
  {
    displayName: 'Peer Links',
    name: 'peerLinks',
    type: 'fixedCollection',
    typeOptions: { multipleValues: true },
    default: {},
    description: 'Provider VMs this VM may call through /workspace/peers/<alias>',
    displayOptions: show(['create']),
    options: [
      {
        displayName: 'Link',
        name: 'links',
        values: [
          { displayName: 'Alias', name: 'alias', type: 'string', default: '' },
          { displayName: 'Provider VM ID', name: 'vmId', type: 'string', default: '' },
          { displayName: 'Source Mode', name: 'sourceMode', type: 'options', options: sourceModeOptions, default: 'hidden' },
        ],
      },
    ],
  },

  // exec
  { displayName: 'Command', name: 'cmd', type: 'string', required: true, default: '', placeholder: 'echo hello', description: 'Run by bash as uid 1000 in /workspace', displayOptions: show(['exec']) },

  // runTs / runJs
  {
    displayName: 'Source',
    name: 'source',
    type: 'options',
    default: 'code',
    options: [
      { name: 'Code', value: 'code' },
      { name: 'File in the VM', value: 'path' },
    ],
    displayOptions: show(RUNS),
  },
  {
    displayName: 'Code',
    name: 'code',
    type: 'string',
    typeOptions: { rows: 8 },
    default: '',
    placeholder: 'result.set({ answer: 42 })',
    description: 'Module source; result.set(value) sets the result',
    displayOptions: { show: { resource: ['vm'], operation: RUNS, source: ['code'] } },
  },
  {
    displayName: 'Path',
    name: 'path',
    type: 'string',
    default: '/workspace/main.ts',
    description: 'A module under /workspace',
    displayOptions: { show: { resource: ['vm'], operation: RUNS, source: ['path'] } },
  },

  // exec + runs
  { ...keyValueCollection('env', 'Environment', 'Environment variables of this run (secretEnv of the VM overrides them)'), displayOptions: show(['exec', ...RUNS]) },
  {
    displayName: 'Options',
    name: 'options',
    type: 'collection',
    placeholder: 'Add Option',
    default: {},
    displayOptions: show(['exec', ...RUNS]),
    options: [
      { displayName: 'Arguments', name: 'args', type: 'string', typeOptions: { multipleValues: true }, default: [], description: 'Arguments of the module (run TypeScript / JavaScript only)' },
      { displayName: 'Working Directory', name: 'cwd', type: 'string', default: '/workspace', description: 'Exec only' },
      { displayName: 'Timeout (Ms)', name: 'timeoutMs', type: 'number', typeOptions: { minValue: 1 }, default: 30000, description: 'Kill the whole process tree after this long' },
    ],
  },

  // network
  {
    displayName: 'Allow Domains',
    name: 'allowDomains',
    type: 'string',
    default: '',
    placeholder: 'api.example.com, *.example.org',
    description: 'Comma-separated host names the VM may resolve and reach',
    displayOptions: show(['updateNetwork']),
  },

  // peers
  { displayName: 'Alias', name: 'alias', type: 'string', required: true, default: '', description: 'Name of the link under /workspace/peers', displayOptions: show(['addPeer', 'removePeer', 'setPeerSourceMode']) },
  { displayName: 'Provider VM ID', name: 'providerVmId', type: 'string', required: true, default: '', displayOptions: show(['addPeer']) },
  { displayName: 'Source Mode', name: 'sourceMode', type: 'options', options: sourceModeOptions, default: 'hidden', displayOptions: show(['addPeer', 'setPeerSourceMode']) },
]
