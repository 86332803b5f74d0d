// The activity log: what changed, when and by whom, in the database (GET /v1/admin/activity),
// pushed to live listeners (the console's event stream, webhooks) as it is written. Entries are
// written by the services that make the changes; nothing in an entry is a secret value (callers
// put names, ids, counts and masked text in `meta`, never environment values or keys). Bounded by
// age (ACTIVITY_RETENTION_DAYS) and count (ACTIVITY_MAX_EVENTS): a VM running commands in a loop
// must not fill the database.
import type { FastifyBaseLogger } from 'fastify'
import type { ActivityEntry, ActivityRepo } from '../../store/activity-repo.ts'
import { currentActor } from './request-actor.ts'

export type { ActivityEntry }

export interface ActivityInput {
  type: string
  entityType: string
  entityId?: string | null
  message: string
  meta?: Record<string, unknown>
  /** Who caused it; the current request's actor (or `system`) when not given. */
  actor?: string
}

type Listener = (e: ActivityEntry) => void

/** What a service is given to report its changes: fire and forget (recording never fails the change). */
export type RecordActivity = (input: ActivityInput) => void

const PRUNE_EVERY_MS = 60 * 60_000

export function createActivityLog(deps: { repo: ActivityRepo; retentionDays: number; maxEvents: number; log: FastifyBaseLogger }) {
  const { repo, log } = deps
  const listeners = new Set<Listener>()
  let timer: NodeJS.Timeout | undefined

  async function prune(): Promise<void> {
    const cutoff = new Date(Date.now() - deps.retentionDays * 86_400_000).toISOString()
    const removed = await repo.prune(cutoff, deps.maxEvents)
    if (removed) log.info({ removed }, 'activity log pruned')
  }

  return {
    /**
     * Writes an entry and tells the listeners. Never throws: the change it reports has happened,
     * and a failure to log it must not turn into a failure of the change.
     */
    async record(input: ActivityInput): Promise<void> {
      try {
        const entry = await repo.append({
          createdAt: new Date().toISOString(),
          type: input.type,
          entityType: input.entityType,
          entityId: input.entityId ?? null,
          actor: input.actor ?? currentActor(),
          message: input.message,
          meta: input.meta ?? {},
        })
        for (const l of listeners) l(entry)
      } catch (err) {
        log.error({ err: (err as Error).message, type: input.type }, 'activity not recorded')
      }
    },

    list: (opts: { limit: number; before?: number }) => repo.list(opts),
    since: (after: number, limit: number) => repo.since(after, limit),

    /** Calls `listener` with every entry written from now on; returns the unsubscribe. */
    subscribe(listener: Listener): () => void {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },

    /** Prunes now and every hour. */
    start(): void {
      void prune().catch((err: Error) => log.error({ err: err.message }, 'activity prune failed'))
      timer ??= setInterval(() => void prune().catch((err: Error) => log.error({ err: err.message }, 'activity prune failed')), PRUNE_EVERY_MS)
      timer.unref()
    },

    close(): void {
      clearInterval(timer)
      timer = undefined
      listeners.clear()
    },

    prune,
  }
}
export type ActivityLog = ReturnType<typeof createActivityLog>
