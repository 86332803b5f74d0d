// What the services tell the metrics, and nothing else: they report events through this small
// interface and never see prom-client (services/metrics/prometheus.ts is the one implementation).
import type { ExecLogType } from '../../store/exec-logs-repo.ts'

/** How a user's create got its VM: booted cold, resumed from a snapshot or seed, or taken from the warm pool. */
export type CreateMode = 'boot' | 'snapshot' | 'pool'

export interface MetricsReport {
  /** A user's create returned a running VM after `seconds`. */
  vmCreated(mode: CreateMode, seconds: number): void
  /** An exec or run (plain or streamed) ended after `seconds`, however it ended. */
  execFinished(kind: ExecLogType, seconds: number): void
}

/** For services built without metrics (tools, some tests). */
export const noMetrics: MetricsReport = { vmCreated: () => {}, execFinished: () => {} }
