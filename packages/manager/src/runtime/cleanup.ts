// An undo stack for multi-step acquisitions (create, start): every step that acquires
// something pushes its release right away; on failure the releases run newest-first, so a
// failed operation leaves nothing behind. Release errors are collected, never thrown over
// the original failure.
export class Cleanup {
  private readonly steps: Array<{ what: string; undo: () => Promise<void> | void }> = []

  add(what: string, undo: () => Promise<void> | void): void {
    this.steps.push({ what, undo })
  }

  /** Forget the undo steps: the operation succeeded and the resources now belong to the VM. */
  commit(): void {
    this.steps.length = 0
  }

  async run(): Promise<string[]> {
    const errors: string[] = []
    while (this.steps.length) {
      const { what, undo } = this.steps.pop()!
      try {
        await undo()
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`)
      }
    }
    return errors
  }
}
