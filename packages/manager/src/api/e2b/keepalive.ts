// envd sends a keepalive event on a stream that has been idle for a while, so proxies and the
// SDK's idle timers keep the stream open while a command is silent. The SDK asks for an interval
// in seconds in the Keepalive-Ping-Interval header.

const DEFAULT_INTERVAL_S = 50
const MIN_INTERVAL_S = 1

export function keepaliveIntervalMs(header: string | null): number {
  const n = Number(header)
  return Number.isFinite(n) && n >= MIN_INTERVAL_S ? Math.min(n, 3600) * 1000 : DEFAULT_INTERVAL_S * 1000
}

/**
 * The items of `source`, with `keepalive()` put in whenever none came for `intervalMs`. The
 * pending read is carried over a keepalive, so no item is lost or reordered.
 */
export async function* withKeepalive<T>(source: AsyncIterator<T>, intervalMs: number, keepalive: () => T): AsyncGenerator<T> {
  let pending: Promise<IteratorResult<T>> | undefined
  try {
    for (;;) {
      pending ??= source.next()
      let timer: NodeJS.Timeout | undefined
      const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), intervalMs)))
      const got = await Promise.race([pending, tick])
      clearTimeout(timer)
      if (got === 'tick') {
        yield keepalive()
        continue
      }
      pending = undefined
      if (got.done) return
      yield got.value
    }
  } finally {
    // Not awaited: a source waiting for output finishes its return only when that output comes;
    // the caller lets the underlying stream go (cancel) so it does.
    void Promise.resolve(source.return?.(undefined)).catch(() => undefined)
  }
}
