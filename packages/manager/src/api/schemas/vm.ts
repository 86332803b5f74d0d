import { Type, type Static } from 'typebox'
import type { VmRecord } from '../../services/vms.ts'
import type { PeerLinkRecord } from '../../services/peers/peer-links.ts'
import { PeerLink, PeerLinkInput } from './peers.ts'
import { VM_STATES, type VmState } from '../../services/vm-lifecycle.ts'
import { AllowDomains, AllowIps } from './network.ts'

export const OnExpire = Type.Union([Type.Literal('delete'), Type.Literal('pause')], {
  default: 'delete',
  description: 'What happens when the TTL runs out: delete (everything of the VM goes) or pause (it stays, costing no CPU, until resumed, snapshotted or deleted).',
})

// Typed as the records they are: TypeBox's static type of additionalProperties alone is {}.
export const Labels = Type.Unsafe<Record<string, string>>(Type.Object(
  {},
  {
    additionalProperties: Type.String(),
    description: 'Up to 32 labels {key: value}: keys like Kubernetes label keys (name or prefix/name; name 1-63 of [A-Za-z0-9-_.], alphanumeric at both ends), values up to 256 characters without control characters. GET /v1/vms?label=key=value finds VMs by them.',
  },
))

export const LabelsPatch = Type.Unsafe<Record<string, string | null>>(Type.Object(
  {},
  { additionalProperties: Type.Union([Type.String(), Type.Null()]), description: 'Labels to set ({key: value}) or remove ({key: null}); the others stay.' },
))

export const ExtendBody = Type.Object(
  { ttlSeconds: Type.Number({ description: 'The VM now expires this many seconds from now (whole, 1..MAX_TTL_SECONDS); also its TTL for later resumes.' }) },
  { additionalProperties: false },
)

export const VmListQuery = Type.Object({
  label: Type.Optional(
    Type.Array(Type.String({ maxLength: 600 }), {
      description: 'key=value (that value) or key (any value); repeat it for VMs having all of them.',
    }),
  ),
})

export const CreateVmBody = Type.Object(
  {
    cpu: Type.Number({ description: 'vCPUs (integer, 1..MAX_CPU).' }),
    memMb: Type.Number({ description: 'Guest memory in MiB (128..MAX_MEM_MB).' }),
    allowIps: AllowIps,
    allowDomains: Type.Optional(AllowDomains),
    secretEnv: Type.Optional(
      Type.Array(Type.String({ maxLength: 65536 }), {
        maxItems: 256,
        description: '"KEY=value" entries given to every exec/run-ts/run-js of this VM (they override the request\'s env). Stored encrypted (needs VM_SECRET_KEY); never returned, logged or copied to another VM; masked in the exec history.',
      }),
    ),
    outboundInternet: Type.Optional(Type.Boolean({ default: false, description: 'With an empty allowIps: any destination (except other VMs, the host and reserved ranges). Also enables DNS through the gateway.' })),
    imageId: Type.Optional(Type.String({ maxLength: 128, description: 'Defaults to the default image (or the snapshot\'s image).' })),
    snapshotId: Type.Optional(
      Type.String({
        maxLength: 128,
        description:
          'Resume from this snapshot (POST /v1/vms/{id}/snapshots): processes, memory and disk as they were. If cpu/memMb differ from the snapshot\'s, the VM boots cold from the snapshot\'s disk instead (provisionMode "boot"). allowIps, outboundInternet and secretEnv of this request apply.',
      }),
    ),
    userOverlaySnapshotId: Type.Optional(Type.String({ maxLength: 128, description: 'The original\'s name for snapshotId.' })),
    acceptSnapshotSecrets: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Create from a snapshot with containsSecrets: true without secretEnv of the same names: the new VM may read the secret values of the VM the snapshot was taken of (they are in its memory).',
      }),
    ),
    peerLinks: Type.Optional(
      Type.Array(PeerLinkInput, {
        maxItems: 32,
        description:
          'Provider VMs this VM may call, each under an alias. Every provider must exist and be RUNNING and have a valid /workspace/.rds-peer/manifest.json whose declared exports are callable (checked now, inside the provider); otherwise the create fails and nothing is left. The VM gets read-only /workspace/peers (index.json, <alias>/manifest.json, README.md, proxy/<module path>).',
      }),
    ),
    diskSizeMb: Type.Optional(Type.Number({ description: 'Accepted for compatibility (checked: > 0, at most 1048576); the overlay size is OVERLAY_SIZE_BYTES, as in the original.' })),
    ttlSeconds: Type.Optional(
      Type.Union([Type.Number(), Type.Null()], {
        description:
          'Seconds the VM lives once it runs (whole, 1..MAX_TTL_SECONDS); then onExpire happens. Absent: DEFAULT_TTL_SECONDS (else MAX_TTL_SECONDS, else no expiry). null: no expiry (refused when MAX_TTL_SECONDS is set). A pause stops the clock, a resume or start runs it again for the whole TTL; a stop does not stop it.',
      }),
    ),
    onExpire: Type.Optional(OnExpire),
    labels: Type.Optional(Labels),
  },
  { additionalProperties: false },
)
export type CreateVmBody = Static<typeof CreateVmBody>

export const VmPublic = Type.Object(
  {
    id: Type.String(),
    state: Type.Unsafe<VmState>({ type: 'string', enum: [...VM_STATES] }),
    cpu: Type.Integer(),
    memMb: Type.Integer(),
    imageId: Type.String(),
    guestIp: Type.Union([Type.String(), Type.Null()]),
    allowIps: Type.Array(Type.String()),
    allowDomains: Type.Array(Type.String()),
    outboundInternet: Type.Boolean(),
    provisionMode: Type.Union([Type.Literal('boot'), Type.Literal('snapshot'), Type.Literal('pool'), Type.Null()], {
      description: 'How the VM was created: boot (cold boot), snapshot (resumed from a snapshot or the image seed), pool (taken from the warm pool).',
    }),
    sourceSnapshotId: Type.Union([Type.String(), Type.Null()], { description: 'The snapshot the VM was created from (snapshotId), if any.' }),
    createdAt: Type.String({ format: 'date-time' }),
    startedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    bootMs: Type.Union([Type.Integer({ description: 'VMM start to agent ready, last boot.' }), Type.Null()]),
    lastError: Type.Union([Type.String(), Type.Null()]),
    createdBy: Type.Union([Type.String(), Type.Null()], { description: 'Who created it: env:API_KEY, key:<api key id> or admin:<email>; null for VMs created before accounts existed.' }),
    peerLinks: Type.Array(PeerLink),
    labels: Labels,
    expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When onExpire happens; null when no clock runs (no TTL, or paused).' }),
    ttlSeconds: Type.Union([Type.Integer(), Type.Null()], { description: 'The TTL last given (create or extend): what a resume or start runs the clock for.' }),
    onExpire: OnExpire,
  },
  {},
)
export type VmPublic = Static<typeof VmPublic>

export const toVmPublic = (vm: VmRecord, peerLinks: PeerLinkRecord[] = []): VmPublic => ({
  id: vm.id,
  state: vm.state,
  cpu: vm.cpu,
  memMb: vm.memMb,
  imageId: vm.imageId,
  guestIp: vm.guestIp,
  allowIps: vm.allowIps,
  allowDomains: vm.allowDomains,
  outboundInternet: vm.outboundInternet,
  provisionMode: vm.provisionMode,
  sourceSnapshotId: vm.sourceSnapshotId,
  createdAt: vm.createdAt,
  startedAt: vm.startedAt,
  bootMs: vm.bootMs,
  lastError: vm.lastError,
  createdBy: vm.createdBy,
  peerLinks: peerLinks.map((l) => ({ alias: l.alias, vmId: l.providerVmId, sourceMode: l.sourceMode })),
  labels: vm.labels,
  expiresAt: vm.expiresAt,
  ttlSeconds: vm.ttlSeconds,
  onExpire: vm.onExpire,
})
