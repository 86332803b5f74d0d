// The per-link rate and concurrency limits of peer calls (the VM test covers concurrency end to
// end; the rate needs a controlled clock).
import { afterEach, beforeEach, expect, it, vi } from 'vitest'
import { PeerLimits } from '@rds/protocol'
import { LinkLimiter } from '../../src/services/peers/peer-calls.ts'

beforeEach(() => {
  vi.useFakeTimers()
  vi.setSystemTime(new Date('2026-01-01T00:00:00Z'))
})
afterEach(() => vi.useRealTimers())

const codeOf = (f: () => unknown) => {
  try {
    f()
    return 'ok'
  } catch (e) {
    return (e as { code: string }).code
  }
}

it('allows a burst of callsPerSecondPerLink, then refills at that rate, per link', () => {
  const l = new LinkLimiter()
  const burst = Array.from({ length: PeerLimits.callsPerSecondPerLink }, () => codeOf(() => l.acquire('c\0a', 'a')()))
  expect(burst.every((c) => c === 'ok')).toBe(true)
  expect(codeOf(() => l.acquire('c\0a', 'a'))).toBe('peer_rate_limited')
  // Another link of the same VM has its own bucket.
  expect(codeOf(() => l.acquire('c\0b', 'b')())).toBe('ok')
  vi.advanceTimersByTime(1000 / PeerLimits.callsPerSecondPerLink + 1)
  expect(codeOf(() => l.acquire('c\0a', 'a')())).toBe('ok')
  expect(codeOf(() => l.acquire('c\0a', 'a'))).toBe('peer_rate_limited')
})

it('limits calls in flight per link and frees a slot when a call ends', () => {
  const l = new LinkLimiter()
  const releases = Array.from({ length: PeerLimits.maxConcurrentPerLink }, () => l.acquire('c\0a', 'a'))
  expect(codeOf(() => l.acquire('c\0a', 'a'))).toBe('peer_concurrency_limited')
  releases[0]!()
  releases[0]!() // releasing twice frees one slot only
  expect(codeOf(() => l.acquire('c\0a', 'a'))).toBe('ok')
  expect(codeOf(() => l.acquire('c\0a', 'a'))).toBe('peer_concurrency_limited')
})
