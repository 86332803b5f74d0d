// Chooses the accelerator once per manager start. KVM only when /dev/kvm exists and a probe
// VM really boots on it (nested or PVM hosts expose /dev/kvm yet cannot run a stock guest
// kernel); otherwise TCG. VMM_ACCEL=kvm|tcg overrides the probe.
import fs from 'node:fs'

export async function chooseAccel(
  setting: 'auto' | 'kvm' | 'tcg',
  probe: () => Promise<boolean>,
): Promise<{ accel: 'kvm' | 'tcg'; reason: string }> {
  if (setting !== 'auto') return { accel: setting, reason: `VMM_ACCEL=${setting}` }
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK)
  } catch {
    return { accel: 'tcg', reason: '/dev/kvm is not available' }
  }
  return (await probe())
    ? { accel: 'kvm', reason: 'probe VM booted with KVM' }
    : { accel: 'tcg', reason: 'probe VM did not boot with KVM' }
}

/**
 * Whether the guest randomises the address space of the user's processes (SANDBOX_ASLR). 'auto'
 * turns it off under TCG only: QEMU finds translated code by virtual address, so with a fresh
 * layout per process it translates bash, libc and the runtimes again on every start (measured 3–4×
 * the start time of a small program). Under KVM there is nothing to gain.
 */
export function userAslrOf(setting: 'auto' | 'on' | 'off', accel: 'kvm' | 'tcg'): boolean {
  return setting === 'auto' ? accel === 'kvm' : setting === 'on'
}
