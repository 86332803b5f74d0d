// Per-key admission: a token bucket for the rate and a cap on work still in progress, keyed by
// whoever is asking (a VM's address for DNS, a consumer's link for peer calls). One mechanism for
// every place a guest can ask the host for work faster than the host should do it.

export interface KeyedLimits {
  /** Admissions per second a key may sustain. */
  ratePerS: number
  /** Admissions a key may take at once after being quiet (the bucket's size; it starts full). */
  burst: number
  /** Admissions of one key still in progress at the same time. */
  maxInFlight: number
}

export type Admission = { ok: true; release: () => void } | { ok: false; reason: 'rate' | 'in_flight' }

interface Bucket {
  tokens: number
  at: number
  inFlight: number
}

export class KeyedLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly limits: KeyedLimits

  constructor(limits: KeyedLimits) {
    this.limits = limits
  }

  /** Takes a token and an in-flight slot, or says which limit the key is over. `release` is idempotent. */
  admit(key: string, now = Date.now()): Admission {
    const { ratePerS, burst, maxInFlight } = this.limits
    let b = this.buckets.get(key)
    if (!b) this.buckets.set(key, (b = { tokens: burst, at: now, inFlight: 0 }))
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * ratePerS)
    b.at = now
    if (b.inFlight >= maxInFlight) return { ok: false, reason: 'in_flight' }
    if (b.tokens < 1) return { ok: false, reason: 'rate' }
    b.tokens -= 1
    b.inFlight++
    const bucket = b
    let released = false
    return {
      ok: true,
      release: () => {
        if (released) return
        released = true
        bucket.inFlight--
      },
    }
  }

  /** Forgets a key: the next one to use it starts with a full bucket. */
  forget(key: string): void {
    this.buckets.delete(key)
  }
}
