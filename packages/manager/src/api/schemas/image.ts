import { Type, type Static } from 'typebox'

export const CreateImageBody = Type.Object({ name: Type.String(), description: Type.String() }, { additionalProperties: false })
export type CreateImageBody = Static<typeof CreateImageBody>

const N = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()])

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
    seedSnapshotId: N(Type.String()),
    seedStatus: Type.Union([Type.Literal('pending'), Type.Literal('ready'), Type.Literal('failed'), Type.Null()]),
    seedUpdatedAt: N(Type.String()),
    seedError: N(Type.String()),
    isDefault: Type.Boolean(),
    hasKernel: Type.Boolean(),
    hasInitrd: Type.Boolean(),
    hasRootfs: Type.Boolean(),
    manifest: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  },
  {},
)
export type ImagePublic = Static<typeof ImagePublic>
