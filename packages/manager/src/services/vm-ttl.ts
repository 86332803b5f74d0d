// The TTL rules of a VM, apart from the reaper that enforces them (vm-expiry.ts): which TTL a
// request gets, and when a VM's clock runs. The clock runs while the VM could be using the host's
// CPU; a pause (by the caller or on expiry) stops it, a resume or start runs it again for the
// full TTL from then (E2B: a paused sandbox's timeout stops and a resumed one gets a fresh
// one). A stop leaves the clock as it is: a stopped VM still holds a disk and an address, and
// the TTL is the caller's promise that it goes.
import type { Config } from '../config.ts'
import { Errors } from '../errors.ts'

export type TtlConfig = Pick<Config, 'defaultTtlSeconds' | 'maxTtlSeconds'>

/** A TTL the caller asked for, checked: whole seconds, 1 or more, within MAX_TTL_SECONDS. */
export function checkTtl(seconds: number, config: TtlConfig): number {
  if (!Number.isInteger(seconds) || seconds < 1) throw Errors.invalidTtl('ttlSeconds')
  if (config.maxTtlSeconds !== undefined && seconds > config.maxTtlSeconds) throw Errors.ttlTooLarge(config.maxTtlSeconds, seconds)
  return seconds
}

/**
 * The TTL of a new VM: the one asked for; none when `null` is asked for explicitly (refused
 * when MAX_TTL_SECONDS says every VM expires); when not given, DEFAULT_TTL_SECONDS, else
 * MAX_TTL_SECONDS, else none.
 */
export function resolveTtl(asked: number | null | undefined, config: TtlConfig): number | null {
  if (asked === undefined) return config.defaultTtlSeconds ?? config.maxTtlSeconds ?? null
  if (asked === null) {
    if (config.maxTtlSeconds !== undefined) throw Errors.ttlTooLarge(config.maxTtlSeconds, null)
    return null
  }
  return checkTtl(asked, config)
}

/** The deadline of a clock started now for `ttlSeconds`, or null for no TTL. */
export const deadline = (ttlSeconds: number | null, now = Date.now()): string | null => (ttlSeconds === null ? null : new Date(now + ttlSeconds * 1000).toISOString())
