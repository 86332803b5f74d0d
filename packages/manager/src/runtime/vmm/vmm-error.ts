// What can go wrong below the services, as values with a kind: the services decide what a
// kind means for the caller (errors.ts maps each kind to one API error), so a QEMU or
// Firecracker message never has to be parsed to tell a full RAM disk from a crashed VMM.
export type VmmErrorKind =
  /** The VMM did not come up: spawn failed, it exited during start, or its agent never answered. */
  | 'start_failed'
  /** Loading a saved state (a clone, a seed resume) failed. */
  | 'restore_failed'
  /** Saving memory and device state failed; the VM continues as it was. */
  | 'snapshot_failed'
  /** The VMM sent more state than a guest of its size can have; the snapshot was cancelled, the VM continues. */
  | 'state_too_large'
  /** Pause, resume or another control request to a live VMM failed. */
  | 'control_failed'
  /** The operation needs a live VMM and this VM has none in this manager. */
  | 'not_running'
  /** The RAM directory cannot hold this VM's memory next to the others. */
  | 'ram_exhausted'
  /** The live VMs' memory and this VM's would pass the host's guest memory budget. */
  | 'memory_budget_exhausted'
  /** The RAM directory is not ours alone (owner, mode or a symlink). */
  | 'ram_dir_unsafe'

export class VmmError extends Error {
  readonly kind: VmmErrorKind
  /** Machine-readable facts for the API error (e.g. free and needed MiB). */
  readonly details: Record<string, unknown>

  constructor(kind: VmmErrorKind, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'VmmError'
    this.kind = kind
    this.details = details
  }
}

/** Keeps an error's kind when it is one already; otherwise gives it `kind`. */
export function asVmmError(err: unknown, kind: VmmErrorKind): VmmError {
  if (err instanceof VmmError) return err
  return new VmmError(kind, err instanceof Error ? err.message : String(err), {}, { cause: err })
}
