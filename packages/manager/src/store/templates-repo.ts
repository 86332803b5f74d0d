// Persistence of templates. The snapshot a template serves is a row of `snapshots` (kind
// template); its files archive lives under STORAGE_ROOT/templates. Every write of a build's
// result is a compare-and-set on `generation`, so a build that a newer definition overtook
// never records itself.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { TemplatesTable } from './schema.ts'

export type TemplateStatus = 'building' | 'ready' | 'failed'

export interface TemplateDefinition {
  imageId?: string
  cpu: number
  memMb: number
  setup: string[]
  env?: Record<string, string>
  allowIps: string[]
  allowDomains?: string[]
  outboundInternet?: boolean
  setupTimeoutMs?: number
}

export interface SetupStep {
  cmd: string
  exitCode: number
  timedOut: boolean
  durationMs: number
  /** The end of each stream (cut at the front when longer). */
  stdout: string
  stderr: string
}

export interface TemplateRecord {
  name: string
  definition: TemplateDefinition
  hasFiles: boolean
  status: TemplateStatus
  generation: number
  snapshotId: string | null
  builtImageId: string | null
  error: string | null
  setupOutput: SetupStep[]
  createdAt: string
  updatedAt: string
  builtAt: string | null
  createdBy: string | null
}

/** What a finished build writes. */
export type BuildResult = Pick<TemplateRecord, 'status' | 'error' | 'setupOutput'> & Partial<Pick<TemplateRecord, 'snapshotId' | 'builtImageId' | 'builtAt'>>

const fromRow = (r: Selectable<TemplatesTable>): TemplateRecord => ({
  name: r.name,
  definition: JSON.parse(r.definition_json) as TemplateDefinition,
  hasFiles: Boolean(r.has_files),
  status: r.status as TemplateStatus,
  generation: r.generation,
  snapshotId: r.snapshot_id,
  builtImageId: r.built_image_id,
  error: r.error,
  setupOutput: r.setup_output_json ? (JSON.parse(r.setup_output_json) as SetupStep[]) : [],
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  builtAt: r.built_at,
  createdBy: r.created_by,
})

export function createTemplatesRepo(db: Db) {
  return {
    async get(name: string): Promise<TemplateRecord | undefined> {
      const r = await db.selectFrom('templates').selectAll().where('name', '=', name).executeTakeFirst()
      return r && fromRow(r)
    },
    async list(): Promise<TemplateRecord[]> {
      return (await db.selectFrom('templates').selectAll().orderBy('name').execute()).map(fromRow)
    },
    /** False when the name is taken (the primary key decides, so two creates cannot both win). */
    async insert(t: { name: string; definition: TemplateDefinition; hasFiles: boolean; createdBy: string | null }): Promise<boolean> {
      const now = new Date().toISOString()
      const r = await db
        .insertInto('templates')
        .values({ name: t.name, definition_json: JSON.stringify(t.definition), has_files: t.hasFiles ? 1 : 0, status: 'building', generation: 1, snapshot_id: null, built_image_id: null, error: null, setup_output_json: null, created_at: now, updated_at: now, built_at: null, created_by: t.createdBy })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst()
      return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1
    },
    /** A new definition (or files) to build: status building, generation raised; the serving snapshot stays. Returns the new generation. */
    async redefine(name: string, change: { definition?: TemplateDefinition; hasFiles?: boolean }): Promise<number | undefined> {
      const r = await db
        .updateTable('templates')
        .set((eb) => ({
          ...(change.definition ? { definition_json: JSON.stringify(change.definition) } : {}),
          ...(change.hasFiles !== undefined ? { has_files: change.hasFiles ? 1 : 0 } : {}),
          status: 'building',
          error: null,
          generation: eb('generation', '+', 1),
          updated_at: new Date().toISOString(),
        }))
        .where('name', '=', name)
        .returning('generation')
        .executeTakeFirst()
      return r?.generation
    },
    /**
     * Records a build's outcome if the template is still the one the build started from (same
     * generation, and not deleted and made again under its name); false otherwise.
     */
    async finishBuild(from: Pick<TemplateRecord, 'name' | 'generation' | 'createdAt'>, result: BuildResult): Promise<boolean> {
      const r = await db
        .updateTable('templates')
        .set({
          status: result.status,
          error: result.error,
          setup_output_json: JSON.stringify(result.setupOutput),
          ...(result.snapshotId !== undefined ? { snapshot_id: result.snapshotId } : {}),
          ...(result.builtImageId !== undefined ? { built_image_id: result.builtImageId } : {}),
          ...(result.builtAt !== undefined ? { built_at: result.builtAt } : {}),
          updated_at: new Date().toISOString(),
        })
        .where('name', '=', from.name)
        .where('generation', '=', from.generation)
        .where('created_at', '=', from.createdAt)
        .executeTakeFirst()
      return Number(r.numUpdatedRows) === 1
    },
    async remove(name: string): Promise<void> {
      await db.deleteFrom('templates').where('name', '=', name).execute()
    },
    /** Snapshots some template serves: every other template snapshot is retired. */
    async servingSnapshotIds(): Promise<Set<string>> {
      const rows = await db.selectFrom('templates').select('snapshot_id').where('snapshot_id', 'is not', null).execute()
      return new Set(rows.map((r) => r.snapshot_id!))
    },
    async count(): Promise<number> {
      const r = await db.selectFrom('templates').select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirstOrThrow()
      return Number(r.n)
    },
  }
}
export type TemplatesRepo = ReturnType<typeof createTemplatesRepo>
