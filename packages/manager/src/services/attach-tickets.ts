// Tickets for a browser's WebSocket attach, which cannot send the X-API-Key header: a caller with
// the key asks for one (POST …/attach-ticket) and hands it to the page. A ticket opens one attach
// of that VM's process only, once, within TICKET_TTL_MS; it is random (not derived from the key),
// kept in this manager's memory only (a restart voids it) and never logged.
import crypto from 'node:crypto'
import type { Actor } from './accounts/actor.ts'

export const TICKET_TTL_MS = 30_000
/** Outstanding tickets at most; the oldest are dropped first (each is short-lived anyway). */
const MAX_TICKETS = 10_000

interface Ticket {
  vmId: string
  pid: number
  expiresAt: number
  /** Who asked for it: the attach acts as them. */
  actor: Actor
}

export function createAttachTickets(now: () => number = Date.now) {
  const tickets = new Map<string, Ticket>()
  const digest = (t: string) => crypto.createHash('sha256').update(t).digest('base64url')

  const sweep = () => {
    const t = now()
    for (const [k, v] of tickets) if (v.expiresAt <= t) tickets.delete(k)
    while (tickets.size >= MAX_TICKETS) tickets.delete(tickets.keys().next().value!)
  }

  return {
    issue(vmId: string, pid: number, actor: Actor): { ticket: string; expiresAt: string } {
      sweep()
      const ticket = crypto.randomBytes(32).toString('base64url')
      const expiresAt = now() + TICKET_TTL_MS
      // Stored by hash: a heap dump or debugger view of the map opens nothing.
      tickets.set(digest(ticket), { vmId, pid, expiresAt, actor })
      return { ticket, expiresAt: new Date(expiresAt).toISOString() }
    },

    /** Whoever asked for a valid ticket of this VM and process, once; the ticket is used up either way. */
    redeem(ticket: string, vmId: string, pid: number): Actor | undefined {
      const key = digest(ticket)
      const t = tickets.get(key)
      if (!t) return undefined
      tickets.delete(key)
      return t.expiresAt > now() && t.vmId === vmId && t.pid === pid ? t.actor : undefined
    },
  }
}
export type AttachTickets = ReturnType<typeof createAttachTickets>
