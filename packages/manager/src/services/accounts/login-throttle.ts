// Failed logins per client: after `maxFailures` within `windowMs` the client is refused until
// its window ends, whatever it sends. Kept in memory (a restart forgives), bounded in size: a
// client's entry is dropped once its window is over.
export class LoginThrottle {
  private readonly failures = new Map<string, { count: number; windowEnds: number }>()
  private readonly maxFailures: number
  private readonly windowMs: number
  /** Past this many tracked clients, expired entries are swept on the next failure. */
  private static readonly SWEEP_AT = 1024

  constructor(maxFailures: number, windowMs: number) {
    this.maxFailures = maxFailures
    this.windowMs = windowMs
  }

  /** Seconds until the client may try again, or 0 when it may now. */
  retryAfterS(client: string, now = Date.now()): number {
    const f = this.failures.get(client)
    if (!f || f.windowEnds <= now) return 0
    return f.count >= this.maxFailures ? Math.ceil((f.windowEnds - now) / 1000) : 0
  }

  fail(client: string, now = Date.now()): void {
    if (this.failures.size >= LoginThrottle.SWEEP_AT) {
      for (const [key, f] of this.failures) if (f.windowEnds <= now) this.failures.delete(key)
    }
    const f = this.failures.get(client)
    if (!f || f.windowEnds <= now) this.failures.set(client, { count: 1, windowEnds: now + this.windowMs })
    else f.count++
  }

  succeed(client: string): void {
    this.failures.delete(client)
  }
}
