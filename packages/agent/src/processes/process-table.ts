// The agent's background processes of this VM: at most MAX_RUNNING_PROCESSES running, and the
// last MAX_EXITED_PROCESSES exited ones kept (oldest forgotten first) so their output and status
// can still be read. Keyed by pid; a new process whose pid an exited one still holds replaces it.
import { MAX_EXITED_PROCESSES, MAX_RUNNING_PROCESSES, type ProcessInfo } from '@rds/protocol'
import { AgentFailure } from '../errors.ts'
import type { BackgroundProcess } from './background-process.ts'

export class ProcessTable {
  readonly #byPid = new Map<number, BackgroundProcess>()
  /** Exited processes, oldest first. */
  readonly #exited: number[] = []

  get running(): number {
    let n = 0
    for (const p of this.#byPid.values()) if (p.running) n++
    return n
  }

  /** Throws process_limit when one more process may not start. */
  checkRoom(): void {
    if (this.running >= MAX_RUNNING_PROCESSES) {
      throw new AgentFailure('process_limit', `${MAX_RUNNING_PROCESSES} processes are running in this VM already; wait for one to exit or kill one`)
    }
  }

  add(p: BackgroundProcess): void {
    const previous = this.#byPid.get(p.pid)
    if (previous) this.#forget(p.pid)
    this.#byPid.set(p.pid, p)
    p.onDone(() => {
      if (this.#byPid.get(p.pid) !== p) return
      this.#exited.push(p.pid)
      while (this.#exited.length > MAX_EXITED_PROCESSES) this.#forget(this.#exited[0]!)
    })
  }

  get(pid: number): BackgroundProcess {
    const p = this.#byPid.get(pid)
    if (!p) throw new AgentFailure('process_not_found', `no process ${pid} in this VM (it never ran here, or it exited long enough ago to be forgotten)`)
    return p
  }

  list(): ProcessInfo[] {
    return [...this.#byPid.values()].map((p) => p.info()).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.pid - b.pid)
  }

  #forget(pid: number): void {
    this.#byPid.delete(pid)
    const i = this.#exited.indexOf(pid)
    if (i >= 0) this.#exited.splice(i, 1)
  }
}
