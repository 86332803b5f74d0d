// History of exec / run-ts / run-js calls per VM (GET /v1/vms/:id/exec-logs). Output is stored
// capped: the history is for people reading it, not a second copy of every byte.
import type { Db } from './db.ts'

export type ExecLogType = 'exec' | 'run-ts' | 'run-js'
export interface ExecLogEntry {
  id: string
  timestamp: string
  type: ExecLogType
  input: Record<string, unknown>
  result: Record<string, unknown>
  durationMs: number
}

export function createExecLogsRepo(db: Db) {
  return {
    async append(vmId: string, e: Omit<ExecLogEntry, 'id'>): Promise<void> {
      await db
        .insertInto('exec_logs')
        .values({ vm_id: vmId, created_at: e.timestamp, type: e.type, input_json: JSON.stringify(e.input), result_json: JSON.stringify(e.result), duration_ms: Math.round(e.durationMs) })
        .execute()
    },
    async list(vmId: string, opts: { limit: number; type?: ExecLogType }): Promise<{ entries: ExecLogEntry[]; hasMore: boolean }> {
      let q = db.selectFrom('exec_logs').selectAll().where('vm_id', '=', vmId)
      if (opts.type) q = q.where('type', '=', opts.type)
      const rows = await q.orderBy('id', 'desc').limit(opts.limit + 1).execute()
      return {
        hasMore: rows.length > opts.limit,
        entries: rows.slice(0, opts.limit).map((r) => ({
          id: String(r.id),
          timestamp: r.created_at,
          type: r.type as ExecLogType,
          input: JSON.parse(r.input_json),
          result: JSON.parse(r.result_json),
          durationMs: r.duration_ms,
        })),
      }
    },
    async removeForVm(vmId: string): Promise<void> {
      await db.deleteFrom('exec_logs').where('vm_id', '=', vmId).execute()
    },
  }
}
export type ExecLogsRepo = ReturnType<typeof createExecLogsRepo>
