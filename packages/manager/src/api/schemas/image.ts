import { Type, type Static } from 'typebox'

export const CreateImageBody = Type.Object({ name: Type.String(), description: Type.String() }, { additionalProperties: false })
export type CreateImageBody = Static<typeof CreateImageBody>

const N = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])

export const ImageSeedShape = Type.Object(
  {
    cpu: Type.Integer(),
    memMb: Type.Integer(),
    status: Type.Union([Type.Literal('pending'), Type.Literal('ready'), Type.Literal('failed')]),
    snapshotId: N(Type.String({ description: 'The seed snapshot (kind image_seed); while pending, the previous one if any.' })),
    error: N(Type.String()),
    updatedAt: Type.String({ format: 'date-time' }),
    lastUsedAt: N(Type.String({ format: 'date-time', description: 'Last build or resume from this seed; the least recently used shape is dropped first (SEED_SHAPES_MAX).' })),
  },
  { description: 'The seed snapshot of one VM shape: a plain create of this cpu/memMb resumes from it when ready.' },
)
export type ImageSeedShape = Static<typeof ImageSeedShape>

export const ImagePublic = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    createdAt: Type.String(),
    kernelFilename: N(Type.String()),
    initrdFilename: N(Type.String()),
    rootfsFilename: N(Type.String()),
    baseRootfsBytes: Type.Union([Type.Integer(), Type.Null()]),
    kernelUploadedAt: N(Type.String()),
    rootfsUploadedAt: N(Type.String()),
    seedSnapshotId: N(Type.String({ description: 'The template shape\'s seed (SNAPSHOT_TEMPLATE_CPU/MEM_MB); every shape is in `seeds`.' })),
    seedStatus: Type.Union([Type.Literal('pending'), Type.Literal('ready'), Type.Literal('failed'), Type.Null()]),
    seedUpdatedAt: N(Type.String()),
    seedError: N(Type.String()),
    seeds: Type.Array(ImageSeedShape),
    isDefault: Type.Boolean(),
    hasKernel: Type.Boolean(),
    hasInitrd: Type.Boolean(),
    hasRootfs: Type.Boolean(),
    manifest: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    createdBy: N(Type.String({ description: 'Who registered it (env:API_KEY, key:<id>, admin:<email>); null for the image the manager built itself.' })),
  },
  {},
)
export type ImagePublic = Static<typeof ImagePublic>
