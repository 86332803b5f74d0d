// The admin console's read side: the activity log, its live stream, and the overview.
import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { ActivityLog } from '../../services/activity/activity-log.ts'
import type { Overview } from '../../services/activity/overview.ts'
import { streamActivity } from '../event-stream.ts'
import { ActivityPublic, ActivityQuery, EventsQuery, OverviewPublic, toActivityPublic } from '../schemas/activity.ts'

const tags = ['admin']

export const adminActivityRoutes = (activity: ActivityLog, overview: Overview): FastifyPluginAsyncTypebox => async (app) => {
  const streams = new Set<ServerResponse>()
  app.addHook('preClose', async () => {
    for (const res of streams) res.end()
  })
  app.get('/admin/activity', { schema: { tags, summary: 'The activity log, newest first', querystring: ActivityQuery, response: { 200: Type.Array(ActivityPublic) } } }, async (req) => {
    const limit = Math.min(200, req.query.limit ?? 50)
    return (await activity.list({ limit, before: req.query.before === undefined ? undefined : Number(req.query.before) })).map(toActivityPublic)
  })

  app.get(
    '/admin/events',
    {
      schema: {
        tags,
        summary: 'The activity log live, as Server-Sent Events (`event: activity`, `id`, JSON `data`); resumes after the Last-Event-ID header (or ?lastEventId=)',
        querystring: EventsQuery,
        produces: ['text/event-stream'],
        response: { 200: Type.String({ description: 'text/event-stream' }) },
      },
    },
    async (req, reply) => {
      const header = req.headers['last-event-id']
      const raw = (Array.isArray(header) ? header[0] : header) ?? req.query.lastEventId
      const resumeAfter = raw !== undefined && /^[0-9]{1,18}$/.test(raw) ? Number(raw) : undefined
      await streamActivity(req, reply, activity, resumeAfter, streams)
    },
  )

  app.get('/admin/overview', { schema: { tags, summary: 'Counts, host CPU/memory/disk, warm pool and seeds', response: { 200: OverviewPublic } } }, async () => overview())
}
