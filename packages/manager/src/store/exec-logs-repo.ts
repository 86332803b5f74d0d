// History of exec / run-ts / run-js calls per VM (GET /v1/vms/:id/exec-logs). Output is stored
// capped (vm-exec.ts) and so is the number of entries per VM: the history is for people reading
// it, not a second copy of every byte, and a VM running commands in a loop must not fill the database.
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

export function createExecLogsRepo(db: Db, maxEntriesPerVm = 1000) {
  return {
    /** Adds an entry and drops this VM's entries older than the newest `maxEntriesPerVm`. */
    async append(vmId: string, e: Omit<ExecLogEntry, 'id'>): Promise<void> {
      await db
        .insertInto('exec_logs')
        .values({ vm_id: vmId, created_at: e.timestamp, type: e.type, input_json: JSON.stringify(e.input), result_json: JSON.stringify(e.result), duration_ms: Math.round(e.durationMs) })
        .execute()
      // The cut-off is the first id past the cap, found by walking the (vm_id, id) index from the
      // newest: the cost is the cap, not the table, and one statement removes however many are
      // over it (after the cap was lowered, too). No row past the cap: the comparison with NULL
      // deletes nothing.
      await db
        .deleteFrom('exec_logs')
        .where('vm_id', '=', vmId)
        .where('id', '<=', (eb) => eb.selectFrom('exec_logs').select('id').where('vm_id', '=', vmId).orderBy('id', 'desc').limit(1).offset(maxEntriesPerVm))
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
