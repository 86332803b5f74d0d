// What one VM may ask of the DNS forwarder. The forwarder listens on an address every VM with DNS
// can reach, and uid 1000 in any guest can send it as many queries as it likes; each costs the
// manager an upstream socket, a timer, a possible nftables update. These limits keep one VM to
// its share: a token bucket for the query rate and a cap on queries still being answered. The
// key is the source address, which the namespace's anti-spoof rule makes the VM's own.

export interface DnsLimitsOptions {
  /** Queries per second each VM may sustain. */
  ratePerS: number
  /** Queries a VM may send at once after being quiet. */
  burst: number
  /** Queries of one VM being answered at the same time (waiting for upstream or nft). */
  maxInFlight: number
}

export const DNS_LIMIT_DEFAULTS: DnsLimitsOptions = { ratePerS: 50, burst: 100, maxInFlight: 32 }

export type Admission = { ok: true; release: () => void } | { ok: false; reason: 'rate' | 'in_flight' }

interface SourceState {
  tokens: number
  at: number
  inFlight: number
  refused: number
  /** Refusals not yet reported in a log line. */
  unreported: number
  reportedAt: number
}

export interface RefusalReport {
  source: string
  /** Refused since the last report. */
  refused: number
  /** Refused since the source was first seen. */
  total: number
}

export class DnsLimits {
  private readonly o: DnsLimitsOptions
  private readonly sources = new Map<string, SourceState>()
  private readonly reportEveryMs: number

  constructor(o: DnsLimitsOptions = DNS_LIMIT_DEFAULTS, reportEveryMs = 10_000) {
    this.o = o
    this.reportEveryMs = reportEveryMs
  }

  /** Takes a token and an in-flight slot for one query, or says which limit it is over. */
  admit(source: string, now = Date.now()): Admission {
    const s = this.state(source, now)
    s.tokens = Math.min(this.o.burst, s.tokens + ((now - s.at) / 1000) * this.o.ratePerS)
    s.at = now
    const reason = s.inFlight >= this.o.maxInFlight ? 'in_flight' : s.tokens < 1 ? 'rate' : undefined
    if (reason) {
      s.refused++
      s.unreported++
      return { ok: false, reason }
    }
    s.tokens -= 1
    s.inFlight++
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        s.inFlight--
      },
    }
  }

  /** Refusals to log, at most one report per source per interval (a flood must not flood the log). */
  reportDue(source: string, now = Date.now()): RefusalReport | undefined {
    const s = this.sources.get(source)
    if (!s || s.unreported === 0 || now - s.reportedAt < this.reportEveryMs) return undefined
    const report = { source, refused: s.unreported, total: s.refused }
    s.unreported = 0
    s.reportedAt = now
    return report
  }

  /** Refused queries per source since it was first seen. */
  refusals(): Record<string, number> {
    return Object.fromEntries([...this.sources].map(([source, s]) => [source, s.refused]))
  }

  /** Forgets a VM (detached): its address may go to another VM, which starts with a full bucket. */
  forget(source: string): void {
    this.sources.delete(source)
  }

  private state(source: string, now: number): SourceState {
    let s = this.sources.get(source)
    if (!s) {
      // reportedAt in the past: the first refusal of a source is logged at once.
      s = { tokens: this.o.burst, at: now, inFlight: 0, refused: 0, unreported: 0, reportedAt: -Infinity }
      this.sources.set(source, s)
    }
    return s
  }
}
