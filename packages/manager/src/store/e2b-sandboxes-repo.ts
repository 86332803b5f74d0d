// Persistence of the E2B layer's facts about a VM (schema.ts E2bSandboxesTable): the only file
// that knows that table's columns.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { E2bSandboxesTable } from './schema.ts'

export interface E2bSandboxRecord {
  vmId: string
  templateId: string
  metadata: Record<string, string>
  envVars: Record<string, string>
  /** ISO 8601: when the client asked the sandbox to end (E2B's `timeout`). */
  endAt: string
  autoPause: boolean
}

const fromRow = (r: Selectable<E2bSandboxesTable>): E2bSandboxRecord => ({
  vmId: r.vm_id,
  templateId: r.template_id,
  metadata: JSON.parse(r.metadata_json) as Record<string, string>,
  envVars: JSON.parse(r.env_vars_json) as Record<string, string>,
  endAt: r.end_at,
  autoPause: Boolean(r.auto_pause),
})

const toRow = (s: E2bSandboxRecord): E2bSandboxesTable => ({
  vm_id: s.vmId,
  template_id: s.templateId,
  metadata_json: JSON.stringify(s.metadata),
  env_vars_json: JSON.stringify(s.envVars),
  end_at: s.endAt,
  auto_pause: s.autoPause ? 1 : 0,
})

export function createE2bSandboxesRepo(db: Db) {
  return {
    async upsert(s: E2bSandboxRecord): Promise<void> {
      const row = toRow(s)
      await db
        .insertInto('e2b_sandboxes')
        .values(row)
        .onConflict((oc) => oc.column('vm_id').doUpdateSet({ template_id: row.template_id, metadata_json: row.metadata_json, env_vars_json: row.env_vars_json, end_at: row.end_at, auto_pause: row.auto_pause }))
        .execute()
    },
    async find(vmId: string): Promise<E2bSandboxRecord | undefined> {
      const r = await db.selectFrom('e2b_sandboxes').selectAll().where('vm_id', '=', vmId).executeTakeFirst()
      return r && fromRow(r)
    },
    async list(): Promise<E2bSandboxRecord[]> {
      return (await db.selectFrom('e2b_sandboxes').selectAll().execute()).map(fromRow)
    },
    async setEndAt(vmId: string, endAt: string): Promise<void> {
      await db.updateTable('e2b_sandboxes').set({ end_at: endAt }).where('vm_id', '=', vmId).execute()
    },
    async remove(vmId: string): Promise<void> {
      await db.deleteFrom('e2b_sandboxes').where('vm_id', '=', vmId).execute()
    },
  }
}
export type E2bSandboxesRepo = ReturnType<typeof createE2bSandboxesRepo>
