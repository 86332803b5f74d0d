import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import { actorLabel } from '../../services/accounts/actor.ts'
import type { PeerLinks } from '../../services/peers/peer-links.ts'
import type { TemplateService } from '../../services/templates.ts'
import { acceptRawBodies, withBodyLimit } from '../raw-body.ts'
import { errorResponses } from '../schemas/common.ts'
import { CreateTemplateBody, SpawnTemplateBody, TemplateDefinitionBody, TemplateFilesAnswer, TemplateNameParams, TemplatePublic, toTemplatePublic } from '../schemas/template.ts'
import { toVmPublic, VmPublic } from '../schemas/vm.ts'

const tags = ['templates']

export const templateRoutes = (templates: TemplateService, peers: PeerLinks, o: { uploadMaxBodyBytes: number }): FastifyPluginAsyncTypebox => async (app) => {
  acceptRawBodies(app)
  app.post(
    '/templates',
    {
      schema: {
        tags,
        summary: 'Create a template: built in the background (boot, files, setup commands, snapshot); status building, then ready or failed',
        body: CreateTemplateBody,
        response: { 202: TemplatePublic, ...errorResponses(400, 404, 409) },
      },
    },
    async (req, reply) => {
      const { name, ...definition } = req.body
      const t = await templates.create({ name, ...definition, allowIps: definition.allowIps ?? [] }, actorLabel(req.actor))
      return reply.code(202).send(toTemplatePublic(t))
    },
  )
  app.get('/templates', { schema: { tags, summary: 'List templates', response: { 200: Type.Array(TemplatePublic) } } }, async () => (await templates.list()).map(toTemplatePublic))
  app.get('/templates/:name', { schema: { tags, summary: 'Get a template: its definition, build status, error and setup output', params: TemplateNameParams, response: { 200: TemplatePublic, ...errorResponses(400, 404) } } }, async (req) =>
    toTemplatePublic(await templates.get(req.params.name)),
  )
  app.put(
    '/templates/:name',
    {
      schema: {
        tags,
        summary: 'Replace a template\'s definition and rebuild it; its last good build keeps serving spawns until the new one is ready',
        params: TemplateNameParams,
        body: TemplateDefinitionBody,
        response: { 202: TemplatePublic, ...errorResponses(400, 404) },
      },
    },
    async (req, reply) => reply.code(202).send(toTemplatePublic(await templates.update(req.params.name, { ...req.body, allowIps: req.body.allowIps ?? [] }))),
  )
  app.put(
    '/templates/:name/files',
    {
      schema: {
        tags,
        summary: 'Upload the files of a template (tar.gz, unpacked into /workspace before the setup): staged for a name not created yet, else a rebuild',
        description: 'Body: tar.gz stream, at most UPLOAD_MAX_BODY_BYTES. Stored as it is on the host; the build VM\'s agent unpacks it (absolute paths, `..`, links, devices and fifos fail the build with archive_invalid).',
        params: TemplateNameParams,
        consumes: ['application/gzip', 'application/x-gzip', 'application/octet-stream'],
        response: { 200: TemplateFilesAnswer, ...errorResponses(400, 413) },
      },
    },
    async (req) => {
      if (!req.body) throw Errors.badRequest('a tar.gz body is required')
      const { name } = req.params
      let answer = { staged: false }
      await withBodyLimit(req.body as Readable, req.headers['content-length'], o.uploadMaxBodyBytes, async (body) => void (answer = await templates.putFiles(name, body)))
      return answer
    },
  )
  app.delete(
    '/templates/:name',
    {
      schema: {
        tags,
        summary: 'Delete a template and its files (also staged files); VMs spawned from it keep running, its snapshot goes when the last of them is gone',
        params: TemplateNameParams,
        response: { 204: Type.Null(), ...errorResponses(400, 404) },
      },
    },
    async (req, reply) => {
      await templates.remove(req.params.name)
      return reply.code(204).send(null)
    },
  )
  app.post(
    '/templates/:name/vms',
    {
      schema: {
        tags,
        summary: 'Spawn a VM from the template: resumed from its snapshot (provisionMode snapshot) with the setup\'s result in place; network policy and secrets per VM',
        params: TemplateNameParams,
        body: SpawnTemplateBody,
        response: { 201: VmPublic, ...errorResponses(400, 404, 409, 429, 500, 503) },
      },
    },
    async (req, reply) => {
      const vm = await templates.spawn(req.params.name, { ...req.body, createdBy: actorLabel(req.actor) })
      return reply.code(201).send(toVmPublic(vm, await peers.list(vm.id)))
    },
  )
}
