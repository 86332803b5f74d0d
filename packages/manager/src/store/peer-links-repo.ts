// Persistence of peer links (consumer VM -> provider VM under an alias) with the provider
// manifest each link was last validated against.
import type { PeerManifest } from '@rds/protocol'
import type { Db } from './db.ts'

export type SourceMode = 'hidden' | 'mounted'

export interface PeerLinkRecord {
  consumerVmId: string
  alias: string
  providerVmId: string
  sourceMode: SourceMode
  manifest: PeerManifest
  syncedAt: string
}

export function createPeerLinksRepo(db: Db) {
  const select = () => db.selectFrom('vm_peer_links').selectAll()
  const fromRow = (r: { consumer_vm_id: string; alias: string; provider_vm_id: string; source_mode: string; manifest_json: string; synced_at: string }): PeerLinkRecord => ({
    consumerVmId: r.consumer_vm_id,
    alias: r.alias,
    providerVmId: r.provider_vm_id,
    sourceMode: r.source_mode === 'mounted' ? 'mounted' : 'hidden',
    manifest: JSON.parse(r.manifest_json) as PeerManifest,
    syncedAt: r.synced_at,
  })
  return {
    async listFor(consumerVmId: string): Promise<PeerLinkRecord[]> {
      return (await select().where('consumer_vm_id', '=', consumerVmId).orderBy('position').execute()).map(fromRow)
    },
    async listAll(): Promise<PeerLinkRecord[]> {
      return (await select().orderBy('consumer_vm_id').orderBy('position').execute()).map(fromRow)
    },
    async get(consumerVmId: string, alias: string): Promise<PeerLinkRecord | undefined> {
      const r = await select().where('consumer_vm_id', '=', consumerVmId).where('alias', '=', alias).executeTakeFirst()
      return r && fromRow(r)
    },
    /** Replaces all links of a consumer in one transaction. */
    async replaceFor(consumerVmId: string, links: Array<Omit<PeerLinkRecord, 'consumerVmId'>>): Promise<void> {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('vm_peer_links').where('consumer_vm_id', '=', consumerVmId).execute()
        if (links.length === 0) return
        await tx
          .insertInto('vm_peer_links')
          .values(links.map((l, i) => ({ consumer_vm_id: consumerVmId, alias: l.alias, provider_vm_id: l.providerVmId, source_mode: l.sourceMode, position: i, manifest_json: JSON.stringify(l.manifest), synced_at: l.syncedAt })))
          .execute()
      })
    },
    async removeFor(consumerVmId: string): Promise<void> {
      await db.deleteFrom('vm_peer_links').where('consumer_vm_id', '=', consumerVmId).execute()
    },
  }
}
export type PeerLinksRepo = ReturnType<typeof createPeerLinksRepo>
