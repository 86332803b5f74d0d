// The guest RAM's size under each accelerator and the live-save rule that follows from it
// (runtime/vmm/qemu/guest-ram.ts). That a padded guest's live save really is exact is shown by
// real VMs: snapshot-live.test.ts checks every page a guest program rewrote during the save.
import { describe, expect, it } from 'vitest'
import { bootRamBytes, isRamSizeOf, liveSaveIsExact, TCG_RAM_PAD_BYTES } from '../../src/runtime/vmm/qemu/guest-ram.ts'

const MIB = 1024 * 1024
/** QEMU 7.2's dirty-bitmap fast path clears 64 pages of 4 KiB per word; a block of whole words takes it. */
const WORD = 64 * 4096

describe('guest RAM size', () => {
  it('under TCG is memMb MiB plus 8 KiB: never a whole number of bitmap words, always a size -m takes', () => {
    for (const memMb of [128, 256, 384, 512, 1000, 1024, 4096, 16384]) {
      const bytes = bootRamBytes(memMb, 'tcg')
      expect(bytes - memMb * MIB).toBe(TCG_RAM_PAD_BYTES)
      expect(bytes % WORD).not.toBe(0)
      // QEMU rounds -m up to 8 KiB: anything else would not be the size the memory file has.
      expect(bytes % 8192).toBe(0)
      expect(liveSaveIsExact(bytes, 'tcg')).toBe(true)
    }
  })

  it('under KVM is memMb MiB exactly, and a live save is exact whatever the size', () => {
    expect(bootRamBytes(256, 'kvm')).toBe(256 * MIB)
    expect(liveSaveIsExact(256 * MIB, 'kvm')).toBe(true)
  })

  it('a TCG guest with a whole number of MiB (restored from a snapshot taken before the padding) is not saved live', () => {
    expect(liveSaveIsExact(256 * MIB, 'tcg')).toBe(false)
    expect(liveSaveIsExact(256 * MIB + WORD, 'tcg')).toBe(false)
  })
})

describe('a reported RAM size', () => {
  it('is believed only when it is one this manager gives a VM of that memMb', () => {
    expect(isRamSizeOf(256, bootRamBytes(256, 'tcg'))).toBe(true)
    expect(isRamSizeOf(256, bootRamBytes(256, 'kvm'))).toBe(true)
    expect(isRamSizeOf(256, bootRamBytes(512, 'tcg'))).toBe(false)
    expect(isRamSizeOf(256, 256 * MIB + 4096)).toBe(false)
    expect(isRamSizeOf(256, 2 ** 40)).toBe(false)
  })
})
