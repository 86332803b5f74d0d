// Row types of the database, as Kysely sees them. Booleans are stored as 0/1 integers and
// timestamps as ISO-8601 text so the same schema runs on SQLite and PostgreSQL.
import type { Generated } from 'kysely'

export interface VmsTable {
  id: string
  state: string
  cpu: number
  mem_mb: number
  image_id: string
  guest_ip: string | null
  allow_ips: string // JSON array
  allow_domains: string // JSON array
  /** secretEnv sealed by services/secret-env.ts; never plaintext. */
  secret_env: string | null
  outbound_internet: number
  provision_mode: string | null
  created_at: string
  started_at: string | null
  boot_ms: number | null
  last_error: string | null
  /** VMM process id and its /proc start time: together they identify the process across a manager restart. */
  vmm_pid: number | null
  vmm_start_time: string | null
  updated_at: string
  purpose: string
  memory_snapshot_id: string | null
  source_snapshot_id: string | null
  /** JSON array: names of the secrets a snapshot this VM was created from held in its memory (their values may be in this VM's RAM too). */
  inherited_secret_names: string | null
  /** Who created it (services/accounts/actor.ts actorLabel); null before accounts existed. */
  created_by: string | null
  /** When the reaper acts on it (ISO, indexed); null while no clock runs. */
  expires_at: string | null
  /** The TTL last given (create or extend): what a resume starts the clock with again. */
  ttl_seconds: number | null
  /** delete | pause; null reads as delete. */
  on_expire: string | null
}

/** One label of a VM; (key, value) is indexed for GET /v1/vms?label=key=value. */
export interface VmLabelsTable {
  vm_id: string
  key: string
  value: string
}

export interface SnapshotsTable {
  id: string
  kind: string
  source_vm_id: string | null
  image_id: string
  /** Identity of the image files the snapshot was taken on: a restore needs byte-identical ones. */
  image_stamp: string
  cpu: number
  mem_mb: number
  memory_in_file: number
  /** The guest RAM's size (bytes); null in rows older than it: mem_mb MiB. */
  ram_bytes: number | string | null
  state_bytes: number
  memory_bytes: number
  disk_bytes: number
  pause_ms: number
  created_at: string
  /** JSON array: names of the secrets whose values the snapshot's memory may hold; null or [] for none. */
  secret_names: string | null
  created_by: string | null
}

export interface ImagesTable {
  id: string
  name: string
  description: string
  created_at: string
  kernel_filename: string | null
  initrd_filename: string | null
  rootfs_filename: string | null
  base_rootfs_bytes: number | null
  kernel_uploaded_at: string | null
  rootfs_uploaded_at: string | null
  manifest_json: string | null
  created_by: string | null
}

/** One seed snapshot per (image, cpu, mem_mb): the shapes users create, resumed instead of booted. */
export interface ImageSeedsTable {
  image_id: string
  cpu: number
  mem_mb: number
  status: string
  snapshot_id: string | null
  error: string | null
  updated_at: string
  /** Last build or resume: the least recently used shape is dropped first when SEED_SHAPES_MAX is reached. */
  last_used_at: string | null
}

export interface SettingsTable {
  key: string
  value: string
}

export interface ExecLogsTable {
  id: Generated<number>
  vm_id: string
  created_at: string
  type: string
  input_json: string
  result_json: string
  duration_ms: number
}

export interface PeerLinksTable {
  consumer_vm_id: string
  alias: string
  provider_vm_id: string
  source_mode: string
  /** Link order as given at create (index.json keeps it). */
  position: number
  /** The provider manifest validated at the last link/sync: what calls are checked against. */
  manifest_json: string
  synced_at: string
}

/** A logged-in admin. The cookie holds the session id; only its SHA-256 is stored. */
export interface AdminSessionsTable {
  id_hash: string
  email: string
  created_at: string
  last_seen_at: string
  /** Absolute end, whatever the activity. */
  expires_at: string
}

/** A minted API key: `<prefix>_<secret>`; the secret is stored as an scrypt hash only. */
export interface ApiKeysTable {
  id: string
  name: string
  prefix: string
  hash: string
  created_at: string
  created_by: string | null
  expires_at: string | null
  revoked_at: string | null
  last_used_at: string | null
}

/** One entry of the activity log. */
export interface ActivityTable {
  id: Generated<number>
  created_at: string
  type: string
  entity_type: string
  entity_id: string | null
  /** actorLabel of who caused it, or `system`. */
  actor: string
  message: string
  meta_json: string
}

export interface WebhooksTable {
  id: string
  name: string
  url: string
  enabled: number
  /** JSON array of activity types; `*` for all. */
  event_types: string
  /** The signing secret, sealed (services/webhooks/webhook-secret.ts). */
  secret_sealed: string
  created_at: string
  created_by: string | null
}

export interface WebhookDeliveriesTable {
  id: Generated<number>
  webhook_id: string
  event_type: string
  /** The exact body sent (and signed) at every attempt. */
  payload_json: string
  /** pending | delivered | failed */
  status: string
  attempts: number
  next_attempt_at: string | null
  last_status: number | null
  last_error: string | null
  created_at: string
  finished_at: string | null
}

/** A template: its definition, build state, and the snapshot its VMs resume from. */
export interface TemplatesTable {
  name: string
  /** JSON: imageId, cpu, memMb, setup, env, allowIps, allowDomains, outboundInternet, setupTimeoutMs. */
  definition_json: string
  /** An archive is stored under STORAGE_ROOT/templates and unpacked into /workspace before the setup. */
  has_files: number
  /** building | ready | failed */
  status: string
  /** Raised by every change of the definition: a build records its result only if no change came after it started. */
  generation: number
  /** The snapshot VMs are spawned from: the last good build, kept while a new one is building. */
  snapshot_id: string | null
  /** The image that snapshot was built on (the default image at the time when the definition names none). */
  built_image_id: string | null
  error: string | null
  /** JSON array of the setup steps of the last build (output cut to its end). */
  setup_output_json: string | null
  created_at: string
  updated_at: string
  built_at: string | null
  created_by: string | null
}

/** A port of a VM that its preview serves without a token (POST /v1/vms/:id/ports/:port/public). */
export interface PublicPortsTable {
  vm_id: string
  port: number
  created_at: string
}

/** E2B-layer facts about a VM (api/e2b); JSON objects of strings. */
export interface E2bSandboxesTable {
  vm_id: string
  template_id: string
  metadata_json: string
  env_vars_json: string
  end_at: string
  auto_pause: number
}

export interface Database {
  templates: TemplatesTable
  e2b_sandboxes: E2bSandboxesTable
  vm_public_ports: PublicPortsTable
  webhooks: WebhooksTable
  webhook_deliveries: WebhookDeliveriesTable
  activity: ActivityTable
  admin_sessions: AdminSessionsTable
  api_keys: ApiKeysTable
  vm_peer_links: PeerLinksTable
  vms: VmsTable
  vm_labels: VmLabelsTable
  images: ImagesTable
  image_seeds: ImageSeedsTable
  settings: SettingsTable
  exec_logs: ExecLogsTable
  snapshots: SnapshotsTable
}
