// Schema migrations, written with Kysely's schema builder so they run on SQLite and PostgreSQL.
// Append new migrations; never edit one that has shipped.
import type { Kysely } from 'kysely'
import type { Migration, MigrationProvider } from 'kysely/migration'

export type SqlDialect = 'sqlite' | 'postgres'

const migrations = (dialect: SqlDialect): Record<string, Migration> => ({
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('vms')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('cpu', 'integer', (c) => c.notNull())
        .addColumn('mem_mb', 'integer', (c) => c.notNull())
        .addColumn('image_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('guest_ip', 'varchar(64)')
        .addColumn('allow_ips', 'text', (c) => c.notNull())
        .addColumn('outbound_internet', 'integer', (c) => c.notNull())
        .addColumn('provision_mode', 'varchar(16)')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('started_at', 'varchar(32)')
        .addColumn('boot_ms', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('vmm_pid', 'integer')
        .addColumn('vmm_start_time', 'varchar(32)')
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('images')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('kernel_filename', 'text')
        .addColumn('initrd_filename', 'text')
        .addColumn('rootfs_filename', 'text')
        .addColumn('base_rootfs_bytes', 'bigint')
        .addColumn('kernel_uploaded_at', 'varchar(32)')
        .addColumn('rootfs_uploaded_at', 'varchar(32)')
        .addColumn('manifest_json', 'text')
        .execute()
      await db.schema
        .createTable('settings')
        .addColumn('key', 'varchar(128)', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('exec_logs')
        .addColumn('id', dialect === 'postgres' ? 'serial' : 'integer', (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('vm_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('type', 'varchar(16)', (c) => c.notNull())
        .addColumn('input_json', 'text', (c) => c.notNull())
        .addColumn('result_json', 'text', (c) => c.notNull())
        .addColumn('duration_ms', 'integer', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('exec_logs_vm_idx').on('exec_logs').columns(['vm_id', 'id']).execute()
    },
  },
  '0002_vm_addresses': {
    // Never two VMs with one address, even with several managers on one PostgreSQL database.
    async up(db: Kysely<any>) {
      await db.schema.createIndex('vms_guest_ip_unique').on('vms').column('guest_ip').unique().execute()
    },
  },
  '0003_allow_domains': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('vms').addColumn('allow_domains', 'text', (c) => c.notNull().defaultTo('[]')).execute()
    },
  },
  '0004_secret_env': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('vms').addColumn('secret_env', 'text').execute()
    },
  },
  '0005_snapshots': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('snapshots')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('kind', 'varchar(16)', (c) => c.notNull())
        .addColumn('source_vm_id', 'varchar(64)')
        .addColumn('image_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('image_stamp', 'text', (c) => c.notNull())
        .addColumn('cpu', 'integer', (c) => c.notNull())
        .addColumn('mem_mb', 'integer', (c) => c.notNull())
        .addColumn('memory_in_file', 'integer', (c) => c.notNull())
        .addColumn('state_bytes', 'bigint', (c) => c.notNull())
        .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
        .addColumn('disk_bytes', 'bigint', (c) => c.notNull())
        .addColumn('pause_ms', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      // purpose: user | seed (builds an image seed) | pool (warm, not yet handed out)
      await db.schema.alterTable('vms').addColumn('purpose', 'varchar(8)', (c) => c.notNull().defaultTo('user')).execute()
      // The snapshot whose memory file this VM maps right now (cleared when it cold-boots).
      await db.schema.alterTable('vms').addColumn('memory_snapshot_id', 'varchar(64)').execute()
      await db.schema.alterTable('vms').addColumn('source_snapshot_id', 'varchar(64)').execute()
      for (const col of ['seed_snapshot_id', 'seed_status', 'seed_updated_at', 'seed_error']) {
        await db.schema.alterTable('images').addColumn(col, 'text').execute()
      }
    },
  },
  // Numbered 0007 (not 0006): chosen while the snapshot work was on another branch, so that every
  // database applies the migrations in the same order whichever branch it ran first.
  '0007_peer_links': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('vm_peer_links')
        .addColumn('consumer_vm_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('alias', 'varchar(64)', (c) => c.notNull())
        .addColumn('provider_vm_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('source_mode', 'varchar(16)', (c) => c.notNull().defaultTo('hidden'))
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('manifest_json', 'text', (c) => c.notNull())
        .addColumn('synced_at', 'varchar(32)', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_peer_links_pk', ['consumer_vm_id', 'alias'])
        .execute()
      await db.schema.createIndex('vm_peer_links_provider_idx').on('vm_peer_links').column('provider_vm_id').execute()
    },
  },
  '0008_image_seeds': {
    // From one seed per image (columns on images) to one per shape. A ready seed keeps working
    // as the seed of its own shape, whatever SNAPSHOT_TEMPLATE_* says now.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('image_seeds')
        .addColumn('image_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('cpu', 'integer', (c) => c.notNull())
        .addColumn('mem_mb', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('snapshot_id', 'varchar(64)')
        .addColumn('error', 'text')
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('last_used_at', 'varchar(32)')
        .addPrimaryKeyConstraint('image_seeds_pk', ['image_id', 'cpu', 'mem_mb'])
        .execute()
      await db
        .insertInto('image_seeds')
        .columns(['image_id', 'cpu', 'mem_mb', 'status', 'snapshot_id', 'error', 'updated_at', 'last_used_at'])
        .expression(
          db
            .selectFrom('images as i')
            .innerJoin('snapshots as s', 's.id', 'i.seed_snapshot_id')
            .where('i.seed_status', '=', 'ready')
            .select(['i.id', 's.cpu', 's.mem_mb', 'i.seed_status', 'i.seed_snapshot_id', 'i.seed_error', 's.created_at', 's.created_at as used']),
        )
        .execute()
      for (const col of ['seed_snapshot_id', 'seed_status', 'seed_updated_at', 'seed_error']) {
        await db.schema.alterTable('images').dropColumn(col).execute()
      }
    },
  },
  '0009_snapshot_secrets': {
    // Which secrets a snapshot's RAM may hold (secretEnv values in process environments), and
    // which ones a VM resumed from such a snapshot carries on into its own snapshots.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('snapshots').addColumn('secret_names', 'text').execute()
      await db.schema.alterTable('vms').addColumn('inherited_secret_names', 'text').execute()
    },
  },
  '0010_accounts': {
    // Admin sessions and database API keys (issue 15). Both store only hashes: a copy of the
    // database gives no live session and no usable key. created_by says which key or session
    // made a VM, snapshot or image.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('admin_sessions')
        .addColumn('id_hash', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('last_seen_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('expires_at', 'varchar(32)', (c) => c.notNull())
        .execute()
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('prefix', 'varchar(64)', (c) => c.notNull().unique())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('expires_at', 'varchar(32)')
        .addColumn('revoked_at', 'varchar(32)')
        .addColumn('last_used_at', 'varchar(32)')
        .execute()
      for (const table of ['vms', 'snapshots', 'images']) await db.schema.alterTable(table).addColumn('created_by', 'text').execute()
    },
  },
  '0011_activity': {
    // The activity log: every state change and who made it, newest read first, pruned by age and count.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('activity')
        .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('type', 'varchar(64)', (c) => c.notNull())
        .addColumn('entity_type', 'varchar(32)', (c) => c.notNull())
        .addColumn('entity_id', 'varchar(128)')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('meta_json', 'text', (c) => c.notNull())
        .execute()
      await db.schema.createIndex('activity_created_idx').on('activity').column('created_at').execute()
    },
  },
  '0012_webhooks': {
    // Webhooks and their deliveries: a delivery is queued here before it is attempted, so a
    // restart neither loses nor blocks it. The signing secret is stored sealed.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('event_types', 'text', (c) => c.notNull())
        .addColumn('secret_sealed', 'text', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .execute()
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('webhook_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('event_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('payload_json', 'text', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('next_attempt_at', 'varchar(32)')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('finished_at', 'varchar(32)')
        .execute()
      await db.schema.createIndex('webhook_deliveries_due_idx').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute()
      await db.schema.createIndex('webhook_deliveries_hook_idx').on('webhook_deliveries').columns(['webhook_id', 'id']).execute()
    },
  },
  '0013_ttl_labels': {
    // Expiry (issue 17): the deadline the reaper sleeps until, indexed so finding the next one is
    // one index read; the TTL itself, so a resume can start a fresh clock. Labels in a table of
    // their own so that filtering by them is SQL on an index, on SQLite and PostgreSQL alike.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('vms').addColumn('expires_at', 'varchar(32)').execute()
      await db.schema.alterTable('vms').addColumn('ttl_seconds', 'integer').execute()
      await db.schema.alterTable('vms').addColumn('on_expire', 'varchar(16)').execute()
      await db.schema.createIndex('vms_expires_idx').on('vms').column('expires_at').execute()
      await db.schema
        .createTable('vm_labels')
        .addColumn('vm_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('key', 'varchar(320)', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_labels_pk', ['vm_id', 'key'])
        .execute()
      await db.schema.createIndex('vm_labels_key_value_idx').on('vm_labels').columns(['key', 'value']).execute()
    },
  },
  '0014_templates': {
    // Templates (issue 17): a definition, its build state and the snapshot VMs are spawned from.
    // Touches no other table, so it applies the same whichever other migration ran first.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('templates')
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('definition_json', 'text', (c) => c.notNull())
        .addColumn('has_files', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('snapshot_id', 'varchar(64)')
        .addColumn('built_image_id', 'varchar(64)')
        .addColumn('error', 'text')
        .addColumn('setup_output_json', 'text')
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('updated_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('built_at', 'varchar(32)')
        .addColumn('created_by', 'text')
        .execute()
    },
  },
  '0015_preview_public_ports': {
    // Ports of a VM opened to preview without a token. Removed with the VM's row (vms-repo remove).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('vm_public_ports')
        .addColumn('vm_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'varchar(32)', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_public_ports_pk', ['vm_id', 'port'])
        .execute()
    },
  },
  '0016_e2b_sandboxes': {
    // What an E2B client said about a sandbox that our VM row has no column for (api/e2b): its
    // template name, metadata, sandbox-wide env vars and the end it asked for. One row per VM
    // created or connected through the E2B layer; removed with the VM.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('e2b_sandboxes')
        .addColumn('vm_id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('template_id', 'text', (c) => c.notNull())
        .addColumn('metadata_json', 'text', (c) => c.notNull())
        .addColumn('env_vars_json', 'text', (c) => c.notNull())
        .addColumn('end_at', 'varchar(32)', (c) => c.notNull())
        .addColumn('auto_pause', 'integer', (c) => c.notNull())
        .execute()
    },
  },
  '0017_snapshot_ram_bytes': {
    // The guest RAM's size in a snapshot: a TCG guest gets a little more than its memMb
    // (runtime/vmm/qemu/guest-ram.ts), and a restore must give it exactly what it had. Null in
    // older rows: memMb MiB, what every VM had before.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('snapshots').addColumn('ram_bytes', 'bigint').execute()
    },
  },
})

export const migrationProvider = (dialect: SqlDialect): MigrationProvider => ({
  getMigrations: async () => migrations(dialect),
})
