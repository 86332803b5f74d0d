import { actorLabel } from '../../services/accounts/actor.ts'
import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import type { ImageService } from '../../services/images.ts'
import type { ImagePart } from '../../services/image-files.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { CreateImageBody, ImagePublic } from '../schemas/image.ts'
import { acceptRawBodies, withBodyLimit } from '../raw-body.ts'

const tags = ['images']
const MAX_IMAGE_FILE_BYTES = 8 * 1024 ** 3

/** What hears of every change to an image's files or of the default: image seeds (rebuilt or removed), templates (rebuilt). */
export interface ImageListener {
  imageChanged(imageId: string): void
  /** Another image is the default (seeds do not care: a seed is per image, not per default). */
  defaultChanged?(imageId: string): void
}

export const imageRoutes = (images: ImageService, listeners: ImageListener[]): FastifyPluginAsyncTypebox => async (app) => {
  const changed = (imageId: string) => listeners.forEach((l) => l.imageChanged(imageId))
  acceptRawBodies(app)
  app.get('/images', { schema: { tags, summary: 'List guest images', response: { 200: Type.Array(ImagePublic) } } }, () => images.list())
  app.post('/images', { schema: { tags, summary: 'Register a new (empty) image', body: CreateImageBody, response: { 201: ImagePublic, ...errorResponses(400) } } }, async (req, reply) =>
    reply.code(201).send(await images.create(req.body, actorLabel(req.actor))),
  )
  app.post('/images/:id/set-default', { schema: { tags, summary: 'Make this the default image', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404) } } }, async (req, reply) => {
    await images.setDefault(req.params.id)
    listeners.forEach((l) => l.defaultChanged?.(req.params.id))
    return reply.code(204).send(null)
  })
  for (const part of ['kernel', 'initrd', 'rootfs'] as const satisfies ImagePart[]) {
    app.put(
      `/images/:id/${part}`,
      { schema: { tags, summary: `Upload the image's ${part} (streamed)`, params: IdParams, consumes: ['application/octet-stream'], response: { 204: Type.Null(), ...errorResponses(400, 404, 409, 413) } } },
      async (req, reply) => {
        if (!req.body) throw Errors.badRequest('a binary body (application/octet-stream) is required')
        const { id } = req.params
        await withBodyLimit(req.body as Readable, req.headers['content-length'], MAX_IMAGE_FILE_BYTES, (body) => images.putPart(id, part, body))
        changed(req.params.id)
        return reply.code(204).send(null)
      },
    )
  }
  app.put(
    '/images/:id/bundle',
    {
      schema: {
        tags,
        summary: 'Upload vmlinux, initrd and/or rootfs.ext4 in one zip or tar(.gz) (streamed to disk)',
        params: IdParams,
        consumes: ['application/zip', 'application/gzip', 'application/x-tar', 'application/octet-stream'],
        response: { 204: Type.Null(), ...errorResponses(400, 404, 409, 413) },
      },
    },
    async (req, reply) => {
      if (!req.body) throw Errors.badRequest('a zip or tar body is required')
      const { id } = req.params
      await withBodyLimit(req.body as Readable, req.headers['content-length'], MAX_IMAGE_FILE_BYTES * 3, async (body) => void (await images.putBundle(id, body)))
      changed(req.params.id)
      return reply.code(204).send(null)
    },
  )
  app.delete('/images/:id', { schema: { tags, summary: 'Delete an image (409 while a VM or a user snapshot uses it; its seed snapshot goes with it)', params: IdParams, response: { 204: Type.Null(), ...errorResponses(404, 409) } } }, async (req, reply) => {
    await images.remove(req.params.id)
    changed(req.params.id)
    return reply.code(204).send(null)
  })
}
