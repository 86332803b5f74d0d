import { Type } from 'typebox'

export const SnapshotsQuery = Type.Object({ scope: Type.Optional(Type.String({ description: 'user (default) | internal | all' })) })

export const SnapshotMeta = Type.Object(
  {
    id: Type.String(),
    kind: Type.String(),
    createdAt: Type.String(),
    cpu: Type.Integer(),
    memMb: Type.Integer(),
    imageId: Type.Optional(Type.String()),
    sourceVmId: Type.Optional(Type.String()),
    hasDisk: Type.Boolean(),
    hasMemory: Type.Boolean(),
  },
  {},
)
