import { Type, type Static } from 'typebox'
import type { ActivityEntry } from '../../services/activity/activity-log.ts'

export const ActivityPublic = Type.Object({
  id: Type.String({ description: 'Increasing with time: page with `before`, resume the event stream with Last-Event-ID.' }),
  createdAt: Type.String({ format: 'date-time' }),
  type: Type.String({ description: 'vm.created, vm.started, vm.stopped, vm.paused, vm.resumed, vm.failed, vm.recovered, vm.deleted, vm.network_updated, vm.port_public, exec.command, runTs.executed, runJs.executed, snapshot.created, snapshot.deleted, snapshot.seed_ready, template.created, template.updated, template.ready, template.failed, template.deleted, image.*, peer.*, apikey.created, apikey.revoked, auth.login, auth.login_failed, auth.logout' }),
  entityType: Type.String(),
  entityId: Type.Union([Type.String(), Type.Null()]),
  actor: Type.String({ description: 'Who caused it: env:API_KEY, key:<id>, admin:<email>, system or anonymous.' }),
  message: Type.String(),
  meta: Type.Record(Type.String(), Type.Unknown()),
  metaJson: Type.String({ description: 'meta as JSON text (the original\'s field).' }),
})
export type ActivityPublic = Static<typeof ActivityPublic>

export const toActivityPublic = (e: ActivityEntry): ActivityPublic => ({ ...e, id: String(e.id), metaJson: JSON.stringify(e.meta) })

export const ActivityQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, description: 'Default 50, at most 200.' })),
  before: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'Only entries older than this id.' })),
})

export const EventsQuery = Type.Object({
  lastEventId: Type.Optional(Type.String({ pattern: '^[0-9]{1,18}$', description: 'Resume after this id (as the Last-Event-ID header does).' })),
})

const Usage = Type.Object({ usedBytes: Type.Number(), capacityBytes: Type.Number() })
export const OverviewPublic = Type.Object({
  counts: Type.Object({ activeVms: Type.Integer(), runningVms: Type.Integer(), snapshots: Type.Integer(), templates: Type.Integer() }),
  cpu: Type.Object({ usagePct: Type.Union([Type.Number({ description: 'Host CPU use, 0..1, sampled over 250 ms.' }), Type.Null()]), capacityCores: Type.Integer(), usedCores: Type.Integer({ description: 'vCPUs of running VMs.' }) }),
  memory: Type.Object({ ...Usage.properties, guestBytes: Type.Number({ description: 'Memory of running VMs.' }) }),
  storage: Usage,
  warmPool: Type.Object({ enabled: Type.Boolean(), target: Type.Integer(), ready: Type.Integer(), starting: Type.Integer(), refilling: Type.Boolean() }),
  seeds: Type.Array(Type.Object({ imageId: Type.String(), cpu: Type.Integer(), memMb: Type.Integer(), status: Type.String(), error: Type.Union([Type.String(), Type.Null()]) })),
})
