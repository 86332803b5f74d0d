// Live preview URLs of a VM's ports (the proxying itself is api/preview/preview-front.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Previews } from '../../services/previews/previews.ts'
import { errorResponses } from '../schemas/common.ts'
import { PortParams, PortPublicState, PreviewUrl, SetPortPublicBody } from '../schemas/preview.ts'

const tags = ['vms']

/** The port the client reached the manager on: the url's port when PORT=0 picked one. */
const requestPort = (host: string | undefined) => {
  const m = /:(\d{1,5})$/.exec(host ?? '')
  return m ? Number(m[1]) : undefined
}

export const vmPortRoutes = (previews: Previews): FastifyPluginAsyncTypebox => async (app) => {
  app.get(
    '/vms/:id/ports/:port/url',
    {
      schema: {
        tags,
        summary: 'A browser url for a port of the VM: proxied by the manager at <port>-<vmId>.<PREVIEW_DOMAIN>, opened by the signed token it carries',
        params: PortParams,
        response: { 200: PreviewUrl, ...errorResponses(404) },
      },
    },
    async (req) => previews.urlFor(req.params.id, req.params.port, requestPort(req.headers.host)),
  )
  app.post(
    '/vms/:id/ports/:port/public',
    {
      schema: {
        tags,
        summary: 'Serve a port\'s preview without a token ({public: true}) or require one again; kept until the VM is deleted',
        params: PortParams,
        body: SetPortPublicBody,
        response: { 200: PortPublicState, ...errorResponses(404) },
      },
    },
    async (req) => previews.setPublic(req.params.id, req.params.port, req.body.public, requestPort(req.headers.host)),
  )
}
