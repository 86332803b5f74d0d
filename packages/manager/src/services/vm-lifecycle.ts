// The one place a VM's state changes. Two tables: which operation a state allows (checked
// before a verb does anything) and which state may follow which (checked at every write).
// Every state write goes through `transition`, under the VM's lock: the verbs (vms.ts,
// vm-create.ts, vm-provision.ts, startup-reconcile.ts) hold it already; what the supervisor
// reports on its own (a VMM exit, a silent agent) takes it here.
import type { FastifyBaseLogger } from 'fastify'
import { Errors } from '../errors.ts'
import type { BootOptions, MachineEvent, Supervisor } from '../runtime/supervisor/supervisor.ts'
import { VM_STATES, type VmPatch, type VmRecord, type VmsRepo, type VmState } from '../store/vms-repo.ts'
import { asSystem } from './activity/request-actor.ts'
import type { KeyedLock } from './locks.ts'

export { VM_STATES, type VmState }

export type VmOperation = 'start' | 'stop' | 'exec' | 'files' | 'delete' | 'snapshot' | 'pause' | 'resume'

const ALLOWED: Record<VmOperation, readonly VmState[]> = {
  start: ['STOPPED', 'ERROR'],
  stop: ['RUNNING', 'PAUSED', 'ERROR'],
  exec: ['RUNNING'],
  files: ['RUNNING'],
  delete: VM_STATES,
  // A paused VM is snapshotted as it is (and stays paused).
  snapshot: ['RUNNING', 'PAUSED'],
  pause: ['RUNNING'],
  resume: ['PAUSED'],
}

/** Messages keep the original's wording ("VM must be STOPPED to start (state=X)"). */
const REQUIRED_WORD: Record<VmOperation, string> = {
  start: 'STOPPED',
  stop: 'RUNNING',
  exec: 'RUNNING',
  files: 'RUNNING',
  delete: 'present',
  snapshot: 'RUNNING',
  pause: 'RUNNING',
  resume: 'PAUSED',
}

export function assertState(vm: { state: VmState }, op: VmOperation): void {
  if (!ALLOWED[op].includes(vm.state)) {
    throw Errors.vmStateConflict(`VM must be ${REQUIRED_WORD[op]} to ${op} (state=${vm.state})`)
  }
}

/** States in which a VMM process is expected to exist. */
export const LIVE_STATES: readonly VmState[] = ['STARTING', 'RUNNING', 'PAUSED', 'STOPPING']

/**
 * Which state may follow which. STOPPED after RUNNING/PAUSED/STARTING is the startup
 * reconciliation of a VM whose VMM did not survive a manager restart; ERROR is reachable from
 * every state a VMM or a start attempt can fail in. A write to the same state only updates fields.
 */
export const TRANSITIONS: Record<VmState, readonly VmState[]> = {
  CREATED: ['STARTING'],
  STARTING: ['RUNNING', 'ERROR', 'STOPPED'],
  RUNNING: ['PAUSED', 'STOPPING', 'ERROR', 'STOPPED'],
  PAUSED: ['RUNNING', 'STOPPING', 'ERROR', 'STOPPED'],
  STOPPING: ['STOPPED', 'ERROR'],
  STOPPED: ['STARTING', 'ERROR'],
  ERROR: ['STARTING', 'RUNNING', 'STOPPING', 'STOPPED'],
}

/** A state written: the VM as it is now, and the state it left. */
export interface StateChange {
  vm: VmRecord
  from: VmState
}

export const canTransition = (from: VmState, to: VmState): boolean => from === to || TRANSITIONS[from].includes(to)

/** A state write the table does not allow: a bug in the manager, never the caller's fault. */
export class IllegalTransition extends Error {
  constructor(id: string, from: VmState, to: VmState) {
    super(`VM ${id}: ${from} -> ${to} is not a state transition`)
    this.name = 'IllegalTransition'
  }
}

export function createLifecycle(deps: {
  repo: VmsRepo
  locks: KeyedLock
  log: FastifyBaseLogger
}) {
  const { repo, locks, log } = deps
  const releaseListeners: Array<(snapshotId: string) => void> = []
  const failureListeners: Array<(vmId: string) => void> = []
  const changeListeners: Array<(change: StateChange) => void> = []

  /** A VM stopped mapping a snapshot's memory file: a dropped image seed may be removed now. */
  function memoryReleased(snapshotId: string): void {
    for (const l of releaseListeners) l(snapshotId)
  }

  /**
   * Moves the VM to `to` with `patch` in the same write; the caller holds the VM's lock.
   * Returns false when the VM is gone, or when `only` is given and the VM is not in one of
   * those states (an event that came too late); throws IllegalTransition otherwise.
   */
  async function transition(id: string, to: VmState, patch: VmPatch = {}, only?: readonly VmState[]): Promise<boolean> {
    if (!locks.isHeld(id)) throw new Error(`VM ${id}: state written without the VM's lock`)
    const vm = await repo.get(id)
    if (!vm) return false
    if (only && !only.includes(vm.state)) return false
    if (!canTransition(vm.state, to)) throw new IllegalTransition(id, vm.state, to)
    // Compare-and-set: a writer that bypassed the lock cannot be overwritten unseen.
    if (!(await repo.setState(id, vm.state, to, patch))) throw new Error(`VM ${id}: state changed during a transition to ${to}`)
    if (vm.memorySnapshotId && patch.memorySnapshotId === null) memoryReleased(vm.memorySnapshotId)
    if (vm.state !== to) for (const l of changeListeners) l({ vm: { ...vm, ...patch, state: to }, from: vm.state })
    return true
  }

  /** Listeners run under the VM's lock: they must not wait for it (the warm pool only starts a refill). */
  function failed(vmId: string): void {
    for (const l of failureListeners) l(vmId)
  }

  /** What the supervisor saw, as state: always under the VM's lock, so never in the middle of a verb. */
  async function onMachineEvent(e: MachineEvent): Promise<void> {
    const at = new Date().toISOString()
    await locks.run(e.vmId, async () => {
      switch (e.type) {
        case 'exited':
          if (await transition(e.vmId, 'ERROR', { lastError: e.reason, vmmPid: null, vmmStartTime: null, memorySnapshotId: null }, ['STARTING', 'RUNNING', 'PAUSED', 'STOPPING', 'ERROR'])) failed(e.vmId)
          return
        case 'agent-silent':
          if (await transition(e.vmId, 'ERROR', { lastError: `guest agent not responding: ${e.reason}` }, ['RUNNING'])) failed(e.vmId)
          return
        case 'agent-back':
          await transition(e.vmId, 'RUNNING', { lastError: `guest agent answers again since ${at}` }, ['ERROR'])
          return
        case 'agent-restarted':
          await repo.update(e.vmId, { lastError: `guest agent restarted at ${at} (see the console log)` })
          return
        case 'live':
          return
      }
    })
  }

  return {
    transition,
    /** Boot options that move the VM to STARTING with its VMM's pid as soon as the process exists (a crash meanwhile cannot orphan it). */
    startingOn: (id: string): BootOptions => ({
      onProcess: async (h) => void (await transition(id, 'STARTING', { vmmPid: h.pid, vmmStartTime: h.startTime })),
    }),
    memoryReleased,
    /** Listens for snapshots whose memory file no VM maps any more. */
    onMemoryReleased(listener: (snapshotId: string) => void): void {
      releaseListeners.push(listener)
    },
    /** Listens for VMs that went to ERROR on their own (VMM exited, agent silent), once the state is written. */
    onVmFailed(listener: (vmId: string) => void): void {
      failureListeners.push(listener)
    },
    /** Listens for every change of a VM's state, once written (under the VM's lock: listeners must not wait for it). */
    onStateChange(listener: (change: StateChange) => void): void {
      changeListeners.push(listener)
    },
    /** Has the supervisor's reports become state changes from now on. */
    follow(supervisor: Supervisor): void {
      supervisor.subscribe((e) => {
        if (e.type === 'live') return
        // What a VM does on its own is the system's doing, even when the watcher that saw it
        // was set up during a caller's request.
        void asSystem(() => onMachineEvent(e)).catch((err: Error) => log.error({ vmId: e.vmId, event: e.type, err: err.message }, 'could not record what happened to a VM'))
      })
    },
  }
}
export type Lifecycle = ReturnType<typeof createLifecycle>
