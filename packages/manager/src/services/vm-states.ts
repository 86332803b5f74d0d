// VM lifecycle states and the one table that says which operation is allowed in which state.
import { Errors } from '../errors.ts'

export const VM_STATES = ['CREATED', 'STARTING', 'RUNNING', 'PAUSED', 'STOPPING', 'STOPPED', 'ERROR'] as const
export type VmState = (typeof VM_STATES)[number]

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
