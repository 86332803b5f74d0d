import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import type { VmExecService } from '../../services/vm-exec.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { DownloadQuery, UploadQuery } from '../schemas/files.ts'
import { acceptRawBodies, withBodyLimit } from '../raw-body.ts'

const tags = ['files']
const Archive = Type.Unsafe<Readable>({ type: 'string', format: 'binary' })

export const vmFileRoutes = (svc: VmExecService, o: { uploadMaxBodyBytes: number }): FastifyPluginAsyncTypebox => async (app) => {
  acceptRawBodies(app)
  app.post(
    '/vms/:id/files/upload',
    {
      schema: {
        tags,
        summary: 'Upload a tar.gz (or plain tar) and extract it under dest (as uid 1000)',
        description: 'Body: tar.gz stream, or a plain tar stream (told apart by gzip\'s magic number; send it as application/x-tar), at most UPLOAD_MAX_BODY_BYTES (default 10 MiB, as the original; 413 payload_too_large). dest names /workspace (absolute or relative to it). Absolute paths, `..`, links, devices and fifos in the archive are refused before anything is written.',
        params: IdParams,
        querystring: UploadQuery,
        consumes: ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream'],
        response: { 204: Type.Null(), ...errorResponses(400, 404, 409, 413) },
      },
    },
    async (req, reply) => {
      if (!req.query.dest) throw Errors.badRequest('dest is required')
      if (!req.body) throw Errors.badRequest('a tar.gz body is required')
      const { id } = req.params
      const dest = req.query.dest
      await withBodyLimit(req.body as Readable, req.headers['content-length'], o.uploadMaxBodyBytes, (body) => svc.upload(id, dest, body))
      return reply.code(204).send(null)
    },
  )
  app.get(
    '/vms/:id/files/download',
    // The archive is gzip (or tar), errors are JSON like everywhere: the media type is given per status.
    { schema: { tags, summary: 'Download a file or directory as tar.gz (or plain tar with format=tar)', params: IdParams, querystring: DownloadQuery, response: { 200: { content: { 'application/gzip': { schema: Archive }, 'application/x-tar': { schema: Archive } } }, ...errorResponses(400, 404, 409) } } },
    async (req, reply) => {
      if (!req.query.path) throw Errors.badRequest('path is required')
      const format = req.query.format ?? 'tar.gz'
      const stream = await svc.download(req.params.id, req.query.path, format)
      return reply.type(format === 'tar' ? 'application/x-tar' : 'application/gzip').send(stream)
    },
  )
}
