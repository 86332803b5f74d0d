// The file API: a VM's files one at a time, as bytes (GET/PUT), metadata (list, stat, glob),
// operations (move, mkdir, chmod, DELETE) and a watch (Server-Sent Events). The tar.gz transfer
// of whole trees stays in vm-files.ts.
import { pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { contentRange, parseRangeHeader } from '@rds/protocol'
import { Type } from 'typebox'
import { ApiError } from '../../errors.ts'
import type { VmFilesService } from '../../services/vm-files.ts'
import { exactLength } from '../exact-length.ts'
import { fileEventsToSse } from '../file-events-sse.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { FileChmodBody, FileDeleteQuery, FileEntry, FileEvent, FileGlobQuery, FileList, FileListQuery, FileMkdirBody, FileMoveBody, FilePathQuery, FileWatchQuery, FileWriteQuery } from '../schemas/file-api.ts'

const tags = ['files']
const WORKSPACE = '/workspace'
const Binary = Type.Unsafe<Readable>({ type: 'string', format: 'binary' })
const bytes = { content: { 'application/octet-stream': { schema: Binary } } }

export const vmFileApiRoutes = (svc: VmFilesService): FastifyPluginAsyncTypebox => async (app) => {
  // PUT takes any body as the file's bytes, whatever type the client names (curl --data-binary
  // says form-urlencoded): in its own context, every content type is a raw stream, never parsed
  // and never under the JSON body limit.
  const rawBodies: FastifyPluginAsyncTypebox = async (raw) => {
    raw.removeAllContentTypeParsers()
    raw.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
    raw.put(
      '/vms/:id/files',
      {
        schema: {
          tags,
          summary: 'Write a file (raw body, streamed; parents created)',
          description: 'The body is the file\'s bytes, any size up to the VM\'s free disk. They land under the final name only once all arrived (a failed or aborted upload leaves the old file, or nothing). `mode` sets the permission bits; without it a replaced file keeps its mode and a new one gets 644. Runs as uid 1000.',
          params: IdParams,
          querystring: FileWriteQuery,
          consumes: ['application/octet-stream'],
          response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409, 507) },
        },
      },
      async (req, reply) => {
        const body = (req.body as Readable | undefined) ?? req.raw
        await svc.write(req.params.id, req.query.path, req.query.mode, body)
        return reply.code(204).send(null)
      },
    )
  }
  await app.register(rawBodies)

  app.get(
    '/vms/:id/files',
    {
      schema: {
        tags,
        summary: 'Read a file (streamed; Range supported)',
        description: 'One byte range per request (`Range: bytes=0-99`, `bytes=100-`, `bytes=-100`) answers 206 with Content-Range; a range outside the file, or one that cannot be served (several ranges, another unit), is 416 range_not_satisfiable.',
        params: IdParams,
        querystring: FilePathQuery,
        response: { 200: bytes, 206: bytes, ...errorResponses(400, 403, 404, 409, 416) },
      },
      // HEAD would start a transfer only to throw it away.
      exposeHeadRoute: false,
    },
    async (req, reply) => {
      const header = req.headers.range
      const range = header === undefined ? undefined : parseRangeHeader(header)
      if (header !== undefined && !range) throw new ApiError(416, 'range_not_satisfiable', `Range ${JSON.stringify(header).slice(0, 100)} cannot be served: one range of bytes is (bytes=first-last, bytes=first-, bytes=-suffix)`)
      const r = await svc.read(req.params.id, req.query.path, range)
      reply.type('application/octet-stream').header('content-length', r.length).header('accept-ranges', 'bytes')
      if (range) reply.code(206).header('content-range', contentRange({ start: r.offset, end: r.offset + r.length - 1, size: r.size }))
      return reply.send(pipeline(r.body, exactLength(r.length), () => {}))
    },
  )

  app.delete(
    '/vms/:id/files',
    { schema: { tags, summary: 'Delete a file, a symlink, or a directory (recursive=true when not empty)', params: IdParams, querystring: FileDeleteQuery, response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409) } } },
    async (req, reply) => {
      await svc.remove(req.params.id, req.query.path, req.query.recursive === true)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/vms/:id/files/list',
    {
      schema: {
        tags,
        summary: 'List a directory',
        description: 'Entries sorted by name, depth-first. At most 10000 entries: a larger listing is refused with 400 too_many_entries (ask for a smaller depth or a subdirectory), never cut silently.',
        params: IdParams,
        querystring: FileListQuery,
        response: { 200: FileList, ...errorResponses(400, 403, 404, 409) },
      },
    },
    async (req) => svc.list(req.params.id, req.query.path ?? WORKSPACE, req.query.depth),
  )
  app.get(
    '/vms/:id/files/stat',
    { schema: { tags, summary: 'One entry (a symlink is described as the link)', params: IdParams, querystring: FilePathQuery, response: { 200: FileEntry, ...errorResponses(400, 403, 404, 409) } } },
    async (req) => svc.stat(req.params.id, req.query.path),
  )
  app.get(
    '/vms/:id/files/glob',
    {
      schema: {
        tags,
        summary: 'Entries matching a glob',
        description: 'Symbolic links are matched but never followed. At most 10000 matches (and 200000 entries looked at): more is 400 too_many_entries.',
        params: IdParams,
        querystring: FileGlobQuery,
        response: { 200: FileList, ...errorResponses(400, 403, 404, 409) },
      },
    },
    async (req) => svc.glob(req.params.id, req.query.pattern),
  )
  app.post(
    '/vms/:id/files/move',
    { schema: { tags, summary: 'Move or rename (parents of `to` created; an existing file at `to` is replaced)', params: IdParams, body: FileMoveBody, response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409) } } },
    async (req, reply) => {
      await svc.move(req.params.id, req.body.from, req.body.to)
      return reply.code(204).send(null)
    },
  )
  app.post(
    '/vms/:id/files/mkdir',
    { schema: { tags, summary: 'Create a directory with its parents (fine if it exists)', params: IdParams, body: FileMkdirBody, response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409) } } },
    async (req, reply) => {
      await svc.mkdir(req.params.id, req.body.path)
      return reply.code(204).send(null)
    },
  )
  app.post(
    '/vms/:id/files/chmod',
    { schema: { tags, summary: 'Set permission bits (octal string, e.g. "755")', params: IdParams, body: FileChmodBody, response: { 204: Type.Null(), ...errorResponses(400, 403, 404, 409) } } },
    async (req, reply) => {
      await svc.chmod(req.params.id, req.body.path, req.body.mode)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/vms/:id/files/watch',
    {
      schema: {
        tags,
        summary: 'Watch for changes (Server-Sent Events)',
        description: 'Each event is one `data:` line of JSON: first `{"type":"ready"}` once the watch is in place, then `create`, `write`, `remove`, `rename` (with `from`) and `overflow` (events were dropped: the client read too slowly). Runs until the client leaves, which stops the watcher in the guest.',
        params: IdParams,
        querystring: FileWatchQuery,
        response: { 200: { content: { 'text/event-stream': { schema: Type.Unsafe({ type: 'string', description: `Server-Sent Events whose data is ${JSON.stringify(FileEvent.properties.type.anyOf.map((t: { const: string }) => t.const))}-typed JSON objects` }) } } }, ...errorResponses(400, 403, 404, 409) },
      },
      exposeHeadRoute: false,
    },
    async (req, reply) => {
      const events = await svc.watch(req.params.id, req.query.path ?? WORKSPACE, req.query.recursive !== false)
      reply.type('text/event-stream').header('cache-control', 'no-cache').header('x-accel-buffering', 'no')
      // The client leaving destroys the SSE stream; pipeline destroys the agent stream with it.
      return reply.send(pipeline(events, fileEventsToSse(), () => {}))
    },
  )
}
