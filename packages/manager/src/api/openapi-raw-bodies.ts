// Streamed bodies (tar.gz uploads, image files) have no body schema: Fastify would try to
// validate the stream. The spec still has to describe them, as the original's did, so routes
// name their media types in `consumes` and this gives the spec (only the spec) a binary body.
import type { FastifySchema } from 'fastify'

export function describeRawBodies({ schema, url }: { schema: FastifySchema; url: string }): { schema: FastifySchema; url: string } {
  const consumes = (schema as { consumes?: unknown } | undefined)?.consumes
  if (!Array.isArray(consumes) || schema.body) return { schema, url }
  return { schema: { ...schema, body: { type: 'string', format: 'binary' } }, url }
}
