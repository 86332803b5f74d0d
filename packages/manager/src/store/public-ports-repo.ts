// Which ports of which VMs are open to preview without a token. Rows go with their VM (vms-repo).
import type { Db } from './db.ts'

export function createPublicPortsRepo(db: Db) {
  return {
    async isPublic(vmId: string, port: number): Promise<boolean> {
      return (await db.selectFrom('vm_public_ports').select('port').where('vm_id', '=', vmId).where('port', '=', port).executeTakeFirst()) !== undefined
    },
    async set(vmId: string, port: number, open: boolean): Promise<void> {
      if (!open) {
        await db.deleteFrom('vm_public_ports').where('vm_id', '=', vmId).where('port', '=', port).execute()
        return
      }
      await db.insertInto('vm_public_ports').values({ vm_id: vmId, port, created_at: new Date().toISOString() }).onConflict((oc) => oc.columns(['vm_id', 'port']).doNothing()).execute()
    },
    async listFor(vmId: string): Promise<number[]> {
      return (await db.selectFrom('vm_public_ports').select('port').where('vm_id', '=', vmId).orderBy('port').execute()).map((r) => r.port)
    },
  }
}
export type PublicPortsRepo = ReturnType<typeof createPublicPortsRepo>
