// Persistence of guest images and of the "default image" setting.
import type { Selectable } from 'kysely'
import type { Db } from './db.ts'
import type { ImagesTable } from './schema.ts'

export interface ImageRecord {
  id: string
  name: string
  description: string
  createdAt: string
  kernelFilename: string | null
  initrdFilename: string | null
  rootfsFilename: string | null
  baseRootfsBytes: number | null
  kernelUploadedAt: string | null
  rootfsUploadedAt: string | null
  manifest: Record<string, unknown> | null
  /** Who registered it (actorLabel); null for the manager's own default image. */
  createdBy: string | null
}

const fromRow = (r: Selectable<ImagesTable>): ImageRecord => ({
  id: r.id,
  name: r.name,
  description: r.description,
  createdAt: r.created_at,
  kernelFilename: r.kernel_filename,
  initrdFilename: r.initrd_filename,
  rootfsFilename: r.rootfs_filename,
  baseRootfsBytes: r.base_rootfs_bytes === null ? null : Number(r.base_rootfs_bytes),
  kernelUploadedAt: r.kernel_uploaded_at,
  rootfsUploadedAt: r.rootfs_uploaded_at,
  manifest: r.manifest_json ? (JSON.parse(r.manifest_json) as Record<string, unknown>) : null,
  createdBy: r.created_by,
})

const DEFAULT_IMAGE_KEY = 'defaultGuestImageId'

export function createImagesRepo(db: Db) {
  return {
    async get(id: string): Promise<ImageRecord | undefined> {
      const r = await db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst()
      return r && fromRow(r)
    },
    async list(): Promise<ImageRecord[]> {
      return (await db.selectFrom('images').selectAll().orderBy('created_at').execute()).map(fromRow)
    },
    async insert(img: ImageRecord): Promise<void> {
      await db
        .insertInto('images')
        .values({
          id: img.id,
          name: img.name,
          description: img.description,
          created_at: img.createdAt,
          kernel_filename: img.kernelFilename,
          initrd_filename: img.initrdFilename,
          rootfs_filename: img.rootfsFilename,
          base_rootfs_bytes: img.baseRootfsBytes,
          kernel_uploaded_at: img.kernelUploadedAt,
          rootfs_uploaded_at: img.rootfsUploadedAt,
          manifest_json: img.manifest ? JSON.stringify(img.manifest) : null,
          created_by: img.createdBy,
        })
        .execute()
    },
    async update(id: string, patch: Partial<Pick<ImageRecord, 'kernelFilename' | 'initrdFilename' | 'rootfsFilename' | 'baseRootfsBytes' | 'kernelUploadedAt' | 'rootfsUploadedAt'>>): Promise<void> {
      const set: Partial<ImagesTable> = {}
      if (patch.kernelFilename !== undefined) set.kernel_filename = patch.kernelFilename
      if (patch.initrdFilename !== undefined) set.initrd_filename = patch.initrdFilename
      if (patch.rootfsFilename !== undefined) set.rootfs_filename = patch.rootfsFilename
      if (patch.baseRootfsBytes !== undefined) set.base_rootfs_bytes = patch.baseRootfsBytes
      if (patch.kernelUploadedAt !== undefined) set.kernel_uploaded_at = patch.kernelUploadedAt
      if (patch.rootfsUploadedAt !== undefined) set.rootfs_uploaded_at = patch.rootfsUploadedAt
      await db.updateTable('images').set(set).where('id', '=', id).execute()
    },
    async remove(id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('images').where('id', '=', id).execute()
        // Its seed snapshots become unreferenced and are collected once no clone maps them.
        await tx.deleteFrom('image_seeds').where('image_id', '=', id).execute()
        await tx.deleteFrom('settings').where('key', '=', DEFAULT_IMAGE_KEY).where('value', '=', id).execute()
      })
    },
    async getDefaultId(): Promise<string | undefined> {
      const r = await db.selectFrom('settings').select('value').where('key', '=', DEFAULT_IMAGE_KEY).executeTakeFirst()
      return r?.value
    },
    async setDefaultId(id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('settings').where('key', '=', DEFAULT_IMAGE_KEY).execute()
        await tx.insertInto('settings').values({ key: DEFAULT_IMAGE_KEY, value: id }).execute()
      })
    },
  }
}
export type ImagesRepo = ReturnType<typeof createImagesRepo>
