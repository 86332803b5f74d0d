import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { SnapshotRecord, SnapshotScope, SnapshotService } from '../../services/snapshots.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { SnapshotIdParams, SnapshotMeta, SnapshotsQuery } from '../schemas/snapshot.ts'

const tags = ['snapshots']

const toMeta = (s: SnapshotRecord): SnapshotMeta => ({
  id: s.id,
  kind: s.kind === 'user' ? 'user_overlay' : s.kind,
  createdAt: s.createdAt,
  cpu: s.cpu,
  memMb: s.memMb,
  imageId: s.imageId,
  sourceVmId: s.sourceVmId,
  hasDisk: false,
  hasOverlay: true,
  hasMemory: true,
  internal: s.kind !== 'user',
  containsSecrets: s.secretNames.length > 0,
  createdBy: s.createdBy,
  pauseMs: s.pauseMs,
  sizes: { memoryBytes: s.memoryBytes, stateBytes: s.stateBytes, diskBytes: s.diskBytes },
})

const scopeOf = (raw: string | undefined): SnapshotScope => (raw === 'internal' || raw === 'all' ? raw : 'user')

export const snapshotRoutes = (snapshots: SnapshotService): FastifyPluginAsyncTypebox => async (app) => {
  app.post(
    '/vms/:id/snapshots',
    {
      schema: {
        tags,
        summary: 'Snapshot a running (or paused) VM: memory, device state and disk; the VM is paused for the copy point and goes on running',
        params: IdParams,
        response: { 201: SnapshotMeta, ...errorResponses(404, 409, 429, 500) },
      },
    },
    async (req, reply) => reply.code(201).send(toMeta(await snapshots.take(req.params.id, 'user', { createdBy: actorLabel(req.actor) }))),
  )
  app.get('/snapshots', { schema: { tags, summary: 'List snapshots', querystring: SnapshotsQuery, response: { 200: Type.Array(SnapshotMeta) } } }, async (req) =>
    (await snapshots.list(scopeOf(req.query.scope))).map(toMeta),
  )
  app.get('/snapshots/:snapshotId', { schema: { tags, summary: 'Get a snapshot', params: SnapshotIdParams, response: { 200: SnapshotMeta, ...errorResponses(400, 404) } } }, async (req) =>
    toMeta(await snapshots.get(req.params.snapshotId)),
  )
  app.delete(
    '/snapshots/:snapshotId',
    {
      schema: {
        tags,
        summary: 'Delete a snapshot (409 while a VM resumed from it still runs on its memory file)',
        params: SnapshotIdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      await snapshots.remove(req.params.snapshotId)
      return reply.code(204).send(null)
    },
  )
}
