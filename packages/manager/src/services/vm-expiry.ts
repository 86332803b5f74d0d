// The expiry reaper: deletes or pauses VMs whose TTL ran out (vm-ttl.ts says when a clock runs).
// Driven from the database, not from memory: it sleeps until the earliest expires_at (one read
// of an index), acts on everything due, and sleeps again; a new deadline earlier than the one it
// sleeps until wakes it sooner. Nothing polls. A manager that was down when VMs expired handles
// them at start, since their deadlines are simply in the past. Each expiry takes the VM's lock
// and checks the deadline again under it, so an extend, resume or delete that got there first
// wins and the expiry does nothing.
import type { FastifyBaseLogger } from 'fastify'
import type { VmsRepo } from '../store/vms-repo.ts'
import { asSystem } from './activity/request-actor.ts'
import type { VmService } from './vms.ts'

/** Sleeps are cut to this: setTimeout cannot wait past 2^31 ms, and a clock jump is noticed within it. */
const MAX_SLEEP_MS = 6 * 3_600_000

export function createExpiryReaper(deps: { repo: Pick<VmsRepo, 'nextExpiry' | 'expiredIds'>; vms: Pick<VmService, 'expire' | 'onClockSet'>; log: FastifyBaseLogger }) {
  const { repo, vms, log } = deps
  let timer: NodeJS.Timeout | undefined
  /** When the armed timer fires (ms), if one is armed. */
  let armedFor: number | undefined
  let sweeping: Promise<void> | undefined
  let sweepAgain = false
  let open = false

  function wakeAt(at: number): void {
    if (!open || (armedFor !== undefined && armedFor <= at)) return
    clearTimeout(timer)
    armedFor = at
    timer = setTimeout(() => {
      armedFor = undefined
      timer = undefined
      // The timer may have been set during a request: expiries are the system's doing, not that caller's.
      asSystem(() => void sweep())
    }, Math.min(Math.max(0, at - Date.now()), MAX_SLEEP_MS))
    timer.unref()
  }

  async function arm(): Promise<void> {
    const next = await repo.nextExpiry()
    if (next !== undefined) wakeAt(Date.parse(next))
  }

  async function expireDue(): Promise<void> {
    do {
      sweepAgain = false
      const now = Date.now()
      for (const id of await repo.expiredIds(new Date(now).toISOString())) {
        if (!open) return
        try {
          const done = await vms.expire(id, now)
          if (done) log.info({ vmId: id, onExpire: done.vm.onExpire, action: done.action, expiresAt: done.vm.expiresAt, ttlSeconds: done.vm.ttlSeconds }, 'VM expired')
        } catch (err) {
          log.error({ vmId: id, err: (err as Error).message }, 'VM expiry failed; tried again in a minute')
        }
      }
    } while (sweepAgain && open)
  }

  function sweep(): Promise<void> {
    if (sweeping) {
      sweepAgain = true
      return sweeping
    }
    sweeping = expireDue()
      .then(() => (open ? arm() : undefined))
      .catch((err: Error) => {
        // The database failed: look again later rather than never.
        log.error({ err: err.message }, 'expiry sweep failed')
        if (open) wakeAt(Date.now() + 60_000)
      })
      .finally(() => (sweeping = undefined))
    return sweeping
  }

  vms.onClockSet((expiresAt) => wakeAt(Date.parse(expiresAt)))

  return {
    /** Handles what expired while the manager was down, then sleeps until the next deadline. */
    async start(): Promise<void> {
      open = true
      await sweep()
    },
    /** Stops waking; an expiry in progress finishes first. */
    async close(): Promise<void> {
      open = false
      clearTimeout(timer)
      timer = undefined
      armedFor = undefined
      await sweeping
    },
    /** The time the reaper sleeps until (tests, the log). */
    nextWake: (): number | undefined => armedFor,
  }
}
export type ExpiryReaper = ReturnType<typeof createExpiryReaper>
