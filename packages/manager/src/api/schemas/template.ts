import { Type, type Static } from 'typebox'
import type { TemplateRecord } from '../../services/templates.ts'
import { AllowDomains, AllowIps } from './network.ts'
import { CreateVmBody } from './vm.ts'

export const TemplateNameParams = Type.Object({ name: Type.String({ maxLength: 128 }) })
export type TemplateNameParams = Static<typeof TemplateNameParams>

const definitionFields = {
  imageId: Type.Optional(Type.String({ maxLength: 128, description: 'The image to build on; without it, the default image at build time (a new default image rebuilds the template).' })),
  cpu: Type.Number({ description: 'vCPUs of the build VM and of every VM spawned (integer, 1..MAX_CPU).' }),
  memMb: Type.Number({ description: 'Guest memory in MiB of the build VM and of every VM spawned (128..MAX_MEM_MB).' }),
  setup: Type.Array(Type.String({ minLength: 1, maxLength: 16384 }), {
    maxItems: 32,
    description: 'Command lines run in order by bash in /workspace as the sandbox user (uid 1000), as exec runs them; the build stops at the first that exits non-zero or times out.',
  }),
  env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ maxLength: 65536 }), { description: 'Environment of the setup commands. Stored in the clear and shown: for credentials use secretEnv on the spawned VMs.' })),
  allowIps: Type.Optional(AllowIps),
  allowDomains: Type.Optional(AllowDomains),
  outboundInternet: Type.Optional(Type.Boolean({ default: false, description: 'Egress of the build VM (e.g. to download packages), and the default of spawned VMs.' })),
  setupTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, description: 'Timeout of each setup command (default and maximum MAX_EXEC_TIMEOUT_MS).' })),
}

export const TemplateDefinitionBody = Type.Object(definitionFields, { additionalProperties: false })
export type TemplateDefinitionBody = Static<typeof TemplateDefinitionBody>

export const CreateTemplateBody = Type.Object(
  { name: Type.String({ maxLength: 128, description: 'Unique; 1 to 63 lowercase letters, digits, "-" and "_", starting with a letter or digit.' }), ...definitionFields },
  { additionalProperties: false },
)
export type CreateTemplateBody = Static<typeof CreateTemplateBody>

/**
 * Per-VM choices of a spawn: the VM create's own fields, so a field the create gains (TTL,
 * labels) is added here by naming it. Shape, image and snapshot are the template's.
 */
export const SpawnTemplateBody = Type.Partial(Type.Pick(CreateVmBody, ['allowIps', 'allowDomains', 'outboundInternet', 'secretEnv', 'peerLinks']), { additionalProperties: false })
export type SpawnTemplateBody = Static<typeof SpawnTemplateBody>

const SetupStepPublic = Type.Object({
  cmd: Type.String(),
  exitCode: Type.Integer({ description: '-1 on timeout, 128+n when killed by signal n.' }),
  timedOut: Type.Boolean(),
  durationMs: Type.Integer(),
  stdout: Type.String({ description: 'The last 4096 characters (cut at the front, marked with "…").' }),
  stderr: Type.String({ description: 'The last 4096 characters (cut at the front, marked with "…").' }),
})

export const TemplatePublic = Type.Object({
  name: Type.String(),
  status: Type.Union([Type.Literal('building'), Type.Literal('ready'), Type.Literal('failed')], {
    description: 'building: a build is queued or running (spawns use the last good build meanwhile, if any); ready: the last build succeeded; failed: it did not (error, setupOutput say why; a previous good build still serves).',
  }),
  ...definitionFields,
  allowIps: AllowIps,
  hasFiles: Type.Boolean({ description: 'An archive (PUT /v1/templates/{name}/files) is unpacked into /workspace before the setup.' }),
  snapshotId: Type.Union([Type.String(), Type.Null()], { description: 'The build VMs are spawned from; null until a build succeeded.' }),
  builtImageId: Type.Union([Type.String(), Type.Null()], { description: 'The image that build was made on.' }),
  builtAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  setupOutput: Type.Array(SetupStepPublic, { description: 'The setup steps of the last finished build, up to the one that failed.' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
})
export type TemplatePublic = Static<typeof TemplatePublic>

export const toTemplatePublic = (t: TemplateRecord): TemplatePublic => ({
  name: t.name,
  status: t.status,
  ...t.definition,
  hasFiles: t.hasFiles,
  snapshotId: t.snapshotId,
  builtImageId: t.builtImageId,
  builtAt: t.builtAt,
  error: t.error,
  setupOutput: t.setupOutput,
  createdAt: t.createdAt,
  updatedAt: t.updatedAt,
  createdBy: t.createdBy,
})

export const TemplateFilesAnswer = Type.Object({
  staged: Type.Boolean({ description: 'true: no template has this name yet; the files are used by its create (and dropped at a manager restart if none comes). false: the template is being rebuilt with them.' }),
})
