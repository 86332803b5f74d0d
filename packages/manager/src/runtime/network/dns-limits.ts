// What one VM may ask of the DNS forwarder. The forwarder listens on an address every VM with DNS
// can reach, and uid 1000 in any guest can send it as many queries as it likes; each costs the
// manager an upstream socket, a timer, a possible nftables update. These limits keep one VM to
// its share: a token bucket for the query rate and a cap on queries still being answered. The
// key is the source address, which the namespace's anti-spoof rule makes the VM's own.
import { KeyedLimiter, type Admission, type KeyedLimits } from '../limits/keyed-limiter.ts'

/** The per-VM limits of the forwarder (runtime/limits/keyed-limiter.ts, keyed by source address). */
export type DnsLimitsOptions = KeyedLimits

export const DNS_LIMIT_DEFAULTS: DnsLimitsOptions = { ratePerS: 50, burst: 100, maxInFlight: 32 }

export type { Admission }

interface RefusalState {
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
  private readonly limiter: KeyedLimiter
  private readonly refusalsBySource = new Map<string, RefusalState>()
  private readonly reportEveryMs: number

  constructor(o: DnsLimitsOptions = DNS_LIMIT_DEFAULTS, reportEveryMs = 10_000) {
    this.limiter = new KeyedLimiter(o)
    this.reportEveryMs = reportEveryMs
  }

  /** Takes a token and an in-flight slot for one query, or says which limit it is over. */
  admit(source: string, now = Date.now()): Admission {
    const admission = this.limiter.admit(source, now)
    if (!admission.ok) {
      // reportedAt in the past: the first refusal of a source is logged at once.
      const r = this.refusalsBySource.get(source) ?? { refused: 0, unreported: 0, reportedAt: -Infinity }
      this.refusalsBySource.set(source, r)
      r.refused++
      r.unreported++
    }
    return admission
  }

  /** Refusals to log, at most one report per source per interval (a flood must not flood the log). */
  reportDue(source: string, now = Date.now()): RefusalReport | undefined {
    const r = this.refusalsBySource.get(source)
    if (!r || r.unreported === 0 || now - r.reportedAt < this.reportEveryMs) return undefined
    const report = { source, refused: r.unreported, total: r.refused }
    r.unreported = 0
    r.reportedAt = now
    return report
  }

  /** Refused queries per source since it was first seen (sources never refused are not listed). */
  refusals(): Record<string, number> {
    return Object.fromEntries([...this.refusalsBySource].map(([source, r]) => [source, r.refused]))
  }

  /** Forgets a VM (detached): its address may go to another VM, which starts with a full bucket. */
  forget(source: string): void {
    this.limiter.forget(source)
    this.refusalsBySource.delete(source)
  }
}
