// How much RAM a guest gets, and whether a running clone of that size may be saved live.
//
// QEMU before 9.0 (Debian 12 ships 7.2) loses guest writes during a live migration under TCG:
// its bitmap sync has a fast path, taken when a RAM block's length is a whole number of bitmap
// words (64 pages, 256 KiB), that clears dirty bits without resetting the vCPU's TLB, so a guest
// store through a TLB entry filled while its page was dirty marks nothing, and the page is never
// sent again (upstream commit 03bfc2188f, "physmem: Fix migration dirty bitmap coherency with TCG
// memory access"). The per-page path resets the TLB for every page it clears. So under TCG a
// guest's RAM is its memMb plus 8 KiB (QEMU's `-m` granularity): never a whole number of words,
// the fast path is never taken, and a live save is exact. Measured (docs/benchmarks.md): guests
// live-saved while rewriting 32 MiB did not come back (a kernel panic, or an agent that never
// answered) 7 of 8 times at memMb MiB, and were intact 9 of 9 times at memMb MiB + 8 KiB.
//
// KVM keeps memMb MiB exactly: its dirty log is the kernel's, the fast path is correct there, and
// the per-page path would clear the kernel's log one page (one ioctl) at a time.

const MIB = 1024 * 1024
/** Bytes the dirty-bitmap fast path clears at once: one 64-bit word of 4 KiB pages. */
const SYNC_WORD_BYTES = 64 * 4096
/** What a TCG guest gets beyond its memMb: the least `-m` allows (QEMU rounds it to 8 KiB). */
export const TCG_RAM_PAD_BYTES = 8 * 1024

/** The RAM a VM of `memMb` boots with on this accelerator (a restored VM keeps its snapshot's). */
export function bootRamBytes(memMb: number, accel: 'kvm' | 'tcg'): number {
  return memMb * MIB + (accel === 'tcg' ? TCG_RAM_PAD_BYTES : 0)
}

/**
 * Whether `ramBytes` is a size this manager gives a VM of `memMb` (either accelerator's). What a
 * VMM reports is not trusted beyond that: it sizes the state stream's cap and a restored VM's RAM.
 */
export function isRamSizeOf(memMb: number, ramBytes: number): boolean {
  return ramBytes === bootRamBytes(memMb, 'kvm') || ramBytes === bootRamBytes(memMb, 'tcg')
}

/** Whether QEMU 7.2 tracks every guest write while a guest with this much RAM runs during a save. */
export function liveSaveIsExact(ramBytes: number, accel: 'kvm' | 'tcg'): boolean {
  return accel === 'kvm' || ramBytes % SYNC_WORD_BYTES !== 0
}
