import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { PeerLinkRecord, PeerLinks } from '../../services/peers/peer-links.ts'
import type { VmService } from '../../services/vms.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { PeerAliasParams, PeerLinkInput, PeerLinksResponse, PeerPatchBody } from '../schemas/peers.ts'

const tags = ['peers']
const view = (links: PeerLinkRecord[]) => ({ peerLinks: links.map((l) => ({ alias: l.alias, vmId: l.providerVmId, sourceMode: l.sourceMode })) })

export const vmPeerRoutes = (vms: VmService, peers: PeerLinks): FastifyPluginAsyncTypebox => async (app) => {
  app.post(
    '/vms/:id/peers',
    {
      schema: {
        tags,
        summary: 'Add a peer link to a running VM: the provider must be RUNNING with a valid manifest (checked as at create); /workspace/peers is rewritten',
        params: IdParams,
        body: PeerLinkInput,
        response: { 200: PeerLinksResponse, ...errorResponses(400, 404, 409) },
      },
    },
    async (req) => view(await peers.link(await vms.get(req.params.id), req.body)),
  )
  app.patch(
    '/vms/:id/peers/:alias',
    {
      schema: {
        tags,
        summary: 'Switch a peer link between hidden and mounted source; rewrites /workspace/peers (provider must be RUNNING for mounted)',
        description: '204 as in the original; GET /v1/vms/{id} shows the links.',
        params: PeerAliasParams,
        body: PeerPatchBody,
        response: { 204: Type.Null(), ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      await peers.setSourceMode(await vms.get(req.params.id), req.params.alias, req.body.sourceMode)
      return reply.code(204).send(null)
    },
  )
  app.delete(
    '/vms/:id/peers/:alias',
    {
      schema: {
        tags,
        summary: 'Remove a peer link; later calls under the alias are refused (peer_call_forbidden) and its files are removed',
        params: PeerAliasParams,
        response: { 200: PeerLinksResponse, ...errorResponses(404) },
      },
    },
    async (req) => view(await peers.unlink(await vms.get(req.params.id), req.params.alias)),
  )
  app.post(
    '/vms/:id/peers/sync',
    {
      schema: {
        tags,
        summary: 'Re-read every provider (manifest validated, exports checked callable) and rewrite /workspace/peers; all-or-nothing',
        description: 'Calls are checked against the manifest stored at the last link/sync, so a provider change takes effect for consumers only after this. 204 as in the original.',
        params: IdParams,
        response: { 204: Type.Null(), ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      await peers.sync(await vms.get(req.params.id))
      return reply.code(204).send(null)
    },
  )
}
