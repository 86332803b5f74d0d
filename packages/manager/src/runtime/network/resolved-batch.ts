// Coalesces the addresses that VMs' allowDomains answers open into one nftables transaction per
// flush. The forwarder waits for its addresses to be in the VM's set before the VM sees the
// answer, so each answer needs an nft run; with one run per answer on the queue that create,
// delete and PATCH use, a VM asking for names as fast as it could would hold up every other
// tenant's API calls. Here additions wait `windowMs` for company, then go together in one flush;
// what arrives during a flush goes in the next one. Flushes run one at a time on their own.

export interface ResolvedEntry {
  address: string
  timeoutS: number
}

/** One flush: per owner (the caller's handle of a VM), the addresses to add, each once. */
export type ResolvedBatch<O> = Map<O, ResolvedEntry[]>

/** Applies a batch; returns the owners whose additions failed, with why. */
export type ApplyResolved<O> = (batch: ResolvedBatch<O>) => Promise<Map<O, Error>>

interface Pending {
  entries: Map<string, number>
  waiters: Array<{ resolve: () => void; reject: (err: Error) => void }>
}

export class ResolvedBatcher<O> {
  private readonly apply: ApplyResolved<O>
  private readonly windowMs: number
  private pending = new Map<O, Pending>()
  private timer: NodeJS.Timeout | undefined
  private flushing: Promise<void> | undefined
  /** Flushes done and additions they carried (for logs and tests). */
  readonly counts = { flushes: 0, additions: 0 }

  constructor(apply: ApplyResolved<O>, windowMs = 10) {
    this.apply = apply
    this.windowMs = windowMs
  }

  /** Resolves once the addresses are in the owner's set (or rejects with why they are not). */
  add(owner: O, entries: ResolvedEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve()
    let p = this.pending.get(owner)
    if (!p) {
      p = { entries: new Map(), waiters: [] }
      this.pending.set(owner, p)
    }
    // The same address twice in one batch: the longer timeout wins.
    for (const e of entries) p.entries.set(e.address, Math.max(e.timeoutS, p.entries.get(e.address) ?? 0))
    const done = new Promise<void>((resolve, reject) => p.waiters.push({ resolve, reject }))
    this.schedule()
    return done
  }

  private schedule(): void {
    if (this.timer || this.flushing || this.pending.size === 0) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined
        this.schedule()
      })
    }, this.windowMs)
  }

  private async flush(): Promise<void> {
    const taken = this.pending
    this.pending = new Map()
    const batch: ResolvedBatch<O> = new Map([...taken].map(([o, p]) => [o, [...p.entries].map(([address, timeoutS]) => ({ address, timeoutS }))]))
    let failed: Map<O, Error>
    try {
      failed = await this.apply(batch)
    } catch (err) {
      failed = new Map([...taken.keys()].map((o) => [o, err as Error]))
    }
    this.counts.flushes++
    for (const [owner, p] of taken) {
      this.counts.additions += p.entries.size
      const err = failed.get(owner)
      for (const w of p.waiters) err ? w.reject(err) : w.resolve()
    }
  }
}
