import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ApiError } from '../../errors.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { SnapshotMeta, SnapshotsQuery } from '../schemas/snapshot.ts'

const tags = ['snapshots']

// Snapshots (memory + disk) are their own piece of work; until it lands the list is empty
// and creating one says so plainly instead of pretending.
export const snapshotRoutes = (): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/snapshots', { schema: { tags, summary: 'List snapshots', querystring: SnapshotsQuery, response: { 200: Type.Array(SnapshotMeta) } } }, async () => [])
  app.post('/vms/:id/snapshots', { schema: { tags, summary: 'Snapshot a running VM (not available yet)', params: IdParams, response: errorResponses(501) } }, async () => {
    throw new ApiError(501, 'not_implemented', 'Snapshots are not available in this version yet')
  })
}
