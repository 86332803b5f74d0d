import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { VmService } from '../../services/vms.ts'
import type { PeerLinks } from '../../services/peers/peer-links.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { shortVmNotFound } from '../not-found.ts'
import { CreateVmBody, ExtendBody, Labels, LabelsPatch, toVmPublic, VmListQuery, VmPublic } from '../schemas/vm.ts'
import { parseLabelFilter } from '../../services/vm-labels.ts'
import { NetworkPatchBody, VmNetwork } from '../schemas/network.ts'

const tags = ['vms']

export const vmRoutes = (vms: VmService, peers: PeerLinks): FastifyPluginAsyncTypebox => async (app) => {
  app.post(
    '/vms',
    {
      schema: {
        tags,
        summary: 'Create a VM: from the warm pool, the image seed snapshot or a snapshot when they fit, else a cold boot (provisionMode says which)',
        body: CreateVmBody,
        response: { 201: VmPublic, ...errorResponses(400, 401, 404, 409, 429, 500, 503) },
      },
    },
    async (req, reply) => {
      const vm = await vms.create({ ...req.body, createdBy: actorLabel(req.actor) })
      return reply.code(201).send(toVmPublic(vm, await peers.list(vm.id)))
    },
  )
  app.get('/vms', { schema: { tags, summary: 'List VMs (?label=key=value, repeatable: only VMs with all those labels)', querystring: VmListQuery, response: { 200: Type.Array(VmPublic), ...errorResponses(400) } } }, async (req) => {
    const filter = parseLabelFilter(req.query.label)
    const all = await peers.listAll()
    return (await vms.list(filter)).map((vm) => toVmPublic(vm, all.filter((l) => l.consumerVmId === vm.id)))
  })
  app.post('/vms/:id/extend', { schema: { tags, summary: 'Expire the VM ttlSeconds from now (starts a clock on a VM without TTL); answers the VM', params: IdParams, body: ExtendBody, response: { 200: VmPublic, ...errorResponses(400, 404) } } }, async (req) => {
    const vm = await vms.extend(req.params.id, req.body.ttlSeconds)
    return toVmPublic(vm, await peers.list(vm.id))
  })
  app.put('/vms/:id/labels', { schema: { tags, summary: 'Replace all labels of a VM', params: IdParams, body: Labels, response: { 200: VmPublic, ...errorResponses(400, 404) } } }, async (req) => {
    const vm = await vms.setLabels(req.params.id, req.body ?? {}, false)
    return toVmPublic(vm, await peers.list(vm.id))
  })
  app.patch('/vms/:id/labels', { schema: { tags, summary: 'Set some labels ({key: value}) and remove others ({key: null}); the rest stay', params: IdParams, body: LabelsPatch, response: { 200: VmPublic, ...errorResponses(400, 404) } } }, async (req) => {
    const vm = await vms.setLabels(req.params.id, req.body ?? {}, true)
    return toVmPublic(vm, await peers.list(vm.id))
  })
  app.get('/vms/:id', { schema: { tags, summary: 'Get a VM', params: IdParams, response: { 200: VmPublic, ...errorResponses(404) } } }, async (req) => {
    const vm = await shortVmNotFound(vms.get(req.params.id))
    return toVmPublic(vm, await peers.list(vm.id))
  })
  app.post('/vms/:id/start', { schema: { tags, summary: 'Boot a stopped VM with its disk', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404, 409, 500) } } }, async (req, reply) => {
    await vms.start(req.params.id)
    return reply.code(204).send(null)
  })
  app.post('/vms/:id/stop', { schema: { tags, summary: 'Shut a VM down cleanly, keeping its disk', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404, 409) } } }, async (req, reply) => {
    await vms.stop(req.params.id)
    return reply.code(204).send(null)
  })
  app.post('/vms/:id/pause', { schema: { tags, summary: 'Freeze a running VM (no host CPU used); memory, disk and network stay', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404, 409) } } }, async (req, reply) => {
    await vms.pause(req.params.id)
    return reply.code(204).send(null)
  })
  app.post('/vms/:id/resume', { schema: { tags, summary: 'Continue a paused VM exactly where it was (its clock is set from the host)', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404, 409) } } }, async (req, reply) => {
    await vms.resume(req.params.id)
    return reply.code(204).send(null)
  })
  app.get('/vms/:id/network', { schema: { tags, summary: 'The VM\'s address and the egress policy the host enforces', params: IdParams, response: { 200: VmNetwork, ...errorResponses(404) } } }, async (req) =>
    vms.network(req.params.id),
  )
  app.patch('/vms/:id/network', { schema: { tags, summary: 'Change allowIps / outboundInternet; applies at once, also to open connections (500 network_failed: not applied, nothing changed)', params: IdParams, body: NetworkPatchBody, response: { 200: VmNetwork, ...errorResponses(400, 404, 500) } } }, async (req) =>
    vms.updateNetwork(req.params.id, req.body),
  )
  app.delete('/vms/:id', { schema: { tags, summary: 'Delete a VM and everything it has on the host', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404) } } }, async (req, reply) => {
    await vms.remove(req.params.id)
    return reply.code(204).send(null)
  })
}
