// The activity log as Server-Sent Events: what was missed since Last-Event-ID first (from the
// database), then every new entry as it is written, with a heartbeat comment so proxies keep the
// connection. A client that does not read is cut off once its unread backlog passes a bound; it
// reconnects with Last-Event-ID and loses nothing the database still has.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ActivityEntry, ActivityLog } from '../services/activity/activity-log.ts'
import { toActivityPublic } from './schemas/activity.ts'

const HEARTBEAT_MS = 15_000
/** Entries replayed on reconnect at most; older ones are in GET /v1/admin/activity. */
const REPLAY_MAX = 1000
/** Unread bytes a client may leave in its socket before it is cut off. */
const BACKLOG_MAX_BYTES = 1024 * 1024

const frame = (e: ActivityEntry) => `event: activity\nid: ${e.id}\ndata: ${JSON.stringify(toActivityPublic(e))}\n\n`

/**
 * Streams to one client until it leaves; `open` holds the streams in progress, so that a
 * shutting-down server can end them (they would otherwise hold it open).
 */
export async function streamActivity(req: FastifyRequest, reply: FastifyReply, activity: ActivityLog, resumeAfter: number | undefined, open: Set<ServerResponse>): Promise<void> {
  reply.hijack()
  const res = reply.raw
  open.add(res)
  // Hijacked: headers the hooks set on the reply (X-Request-Id) are sent only if written here.
  res.writeHead(200, { ...(reply.getHeaders() as OutgoingHttpHeaders), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' })
  res.write(': connected\n\n')

  let lastSent = resumeAfter ?? 0
  let replaying = resumeAfter !== undefined
  const held: ActivityEntry[] = []
  const send = (e: ActivityEntry): void => {
    if (e.id <= lastSent || res.destroyed) return
    lastSent = e.id
    res.write(frame(e))
    if (res.writableLength > BACKLOG_MAX_BYTES) res.destroy()
  }
  // Subscribed before the replay is read, so nothing written meanwhile falls between the two.
  const unsubscribe = activity.subscribe((e) => (replaying ? held.push(e) : send(e)))
  const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS)
  const end = () => {
    clearInterval(heartbeat)
    unsubscribe()
    open.delete(res)
  }
  res.once('close', end)
  req.raw.once('close', end)
  if (replaying) {
    try {
      for (const e of await activity.since(lastSent, REPLAY_MAX)) send(e)
    } finally {
      replaying = false
      for (const e of held.splice(0)) send(e)
    }
  }
}
