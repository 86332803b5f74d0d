import { Type, type Static } from 'typebox'

export const SnapshotsQuery = Type.Object({
  scope: Type.Optional(Type.String({ description: 'user (default): snapshots taken through the API; internal: image seeds and template builds; all. Anything else means user, as in the original.' })),
})
export type SnapshotsQuery = Static<typeof SnapshotsQuery>

export const SnapshotIdParams = Type.Object({ snapshotId: Type.String({ maxLength: 128 }) })
export type SnapshotIdParams = Static<typeof SnapshotIdParams>

export const SnapshotMeta = Type.Object(
  {
    id: Type.String(),
    kind: Type.Union([Type.Literal('user_overlay'), Type.Literal('image_seed'), Type.Literal('template')], { description: 'user_overlay: taken through the API (the original\'s name); image_seed: built by the manager per image; template: the build of a template (removed with it).' }),
    createdAt: Type.String({ format: 'date-time' }),
    cpu: Type.Integer(),
    memMb: Type.Integer(),
    imageId: Type.String(),
    sourceVmId: Type.Union([Type.String(), Type.Null()]),
    hasDisk: Type.Boolean({ description: 'Always false: the base rootfs is shared, never copied (the original\'s field).' }),
    hasOverlay: Type.Boolean({ description: 'The VM\'s writable disk is part of the snapshot.' }),
    hasMemory: Type.Boolean({ description: 'Memory and device state are part of the snapshot: a VM created from it resumes running processes.' }),
    internal: Type.Boolean(),
    containsSecrets: Type.Boolean({
      description:
        'The memory holds secretEnv values of the VM it was taken of (process environments). A VM created from it can read them, so a create needs secretEnv with the same names or acceptSnapshotSecrets: true (400 snapshot_contains_secrets otherwise). Never true for image seeds.',
    }),
    pauseMs: Type.Integer({ description: 'How long the source VM was paused for the copy point.' }),
    createdBy: Type.Union([Type.String(), Type.Null()], { description: 'Who took it (env:API_KEY, key:<id>, admin:<email>); null for image seeds.' }),
    sizes: Type.Object(
      {
        memoryBytes: Type.Integer({ description: 'Disk space of the memory file (sparse: only pages the guest touched).' }),
        stateBytes: Type.Integer({ description: 'Device state (and memory, when the source VM was itself resumed from a snapshot).' }),
        diskBytes: Type.Integer({ description: 'Disk space of the overlay copy.' }),
      },
      {},
    ),
  },
  {},
)
export type SnapshotMeta = Static<typeof SnapshotMeta>
