// The manager's metrics in Prometheus' text format (GET /metrics), on prom-client. One registry
// per manager (not prom-client's global one), so two managers in one test process never share
// a series. Gauges are read when scraped, from the database and /proc: nothing to keep in step.
import fs from 'node:fs'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { memoryFrom } from '../../runtime/host/host-usage.ts'
import { VM_STATES, type VmPurpose, type VmsRepo } from '../../store/vms-repo.ts'
import type { MetricsReport } from './report.ts'

const PURPOSES: readonly VmPurpose[] = ['user', 'pool', 'seed']

/** Under TCG a cold boot takes seconds, a resume well under one; on KVM both are far faster. */
const CREATE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120]
/** From `true` (milliseconds) to the longest timeoutMs allowed by default (120 s). */
const EXEC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

export interface ManagerMetrics {
  report: MetricsReport
  /** One answered HTTP request; `route` is the route's pattern, never the URL. */
  httpRequest(route: string, method: string, status: number): void
  render(): Promise<string>
  contentType: string
}

export function createMetrics(deps: { vms: Pick<VmsRepo, 'countByState'>; memoryBudget: () => { usedMb: number; budgetMb: number }; meminfo?: () => string }): ManagerMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const readMeminfo = deps.meminfo ?? (() => fs.readFileSync('/proc/meminfo', 'utf8'))

  new Gauge({
    name: 'rds_vms',
    help: 'VMs by state and purpose (user: created through the API; pool: warm pool; seed: image seed builds).',
    labelNames: ['state', 'purpose'] as const,
    registers: [registry],
    async collect() {
      const counts = await deps.vms.countByState()
      // Every combination, zeros included: a series that vanishes reads as "no data", not 0.
      for (const purpose of PURPOSES) for (const state of VM_STATES) this.set({ state, purpose }, counts.find((c) => c.purpose === purpose && c.state === state)?.n ?? 0)
    },
  })
  new Gauge({
    name: 'rds_warm_pool_ready',
    help: 'Warm pool VMs running and ready to be handed out.',
    registers: [registry],
    async collect() {
      const counts = await deps.vms.countByState()
      this.set(counts.find((c) => c.purpose === 'pool' && c.state === 'RUNNING')?.n ?? 0)
    },
  })
  new Gauge({
    name: 'rds_host_memory_bytes',
    help: 'Host memory from /proc/meminfo: total, and available (what the kernel could give a new process now).',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const m = memoryFrom(readMeminfo())
      this.set({ kind: 'total' }, m.capacityBytes)
      this.set({ kind: 'available' }, m.capacityBytes - m.usedBytes)
    },
  })
  new Gauge({
    name: 'rds_guest_memory_bytes',
    help: 'Memory admitted for running VMs, their guests and VMMs (used), and the budget (VM_MEMORY_BUDGET_MB); a create past the budget is 503.',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const m = deps.memoryBudget()
      this.set({ kind: 'used' }, m.usedMb * 1024 * 1024)
      this.set({ kind: 'budget' }, m.budgetMb * 1024 * 1024)
    },
  })
  const createSeconds = new Histogram({
    name: 'rds_vm_create_seconds',
    help: 'Time of a successful POST /v1/vms, by how the VM was provisioned (boot, snapshot, pool).',
    labelNames: ['mode'] as const,
    buckets: CREATE_BUCKETS,
    registers: [registry],
  })
  const execSeconds = new Histogram({
    name: 'rds_exec_seconds',
    help: 'Time of a finished exec, run-ts or run-js (plain or streamed), by kind.',
    labelNames: ['kind'] as const,
    buckets: EXEC_BUCKETS,
    registers: [registry],
  })
  const httpRequests = new Counter({
    name: 'rds_http_requests_total',
    help: 'Answered HTTP requests by route pattern, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  })
  // Zero series from the start, so a rate() over the first observation is not lost.
  for (const mode of ['boot', 'snapshot', 'pool']) createSeconds.zero({ mode })
  for (const kind of ['exec', 'run-ts', 'run-js']) execSeconds.zero({ kind })

  return {
    report: {
      vmCreated: (mode, seconds) => createSeconds.observe({ mode }, seconds),
      execFinished: (kind, seconds) => execSeconds.observe({ kind }, seconds),
    },
    httpRequest: (route, method, status) => httpRequests.inc({ route, method, status: String(status) }),
    render: () => registry.metrics(),
    contentType: registry.contentType,
  }
}
