// Serialises lifecycle operations per VM (start/stop/delete must not interleave) while
// operations on different VMs run in parallel.
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>()
  private readonly holders = new Set<string>()

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve()
    const next = prev.catch(() => {}).then(async () => {
      this.holders.add(key)
      try {
        return await fn()
      } finally {
        this.holders.delete(key)
      }
    })
    this.tails.set(key, next)
    try {
      return await next
    } finally {
      if (this.tails.get(key) === next) this.tails.delete(key)
    }
  }

  /** Whether a `run` for this key is executing now (the state writer checks it holds the lock). */
  isHeld(key: string): boolean {
    return this.holders.has(key)
  }
}
