import { Type, type Static } from 'typebox'

export const HealthBody = Type.Object({
  status: Type.Literal('ok', { description: 'The process is alive and serving HTTP.' }),
  uptimeSeconds: Type.Number({ description: 'Seconds since the manager process started.' }),
})
export type HealthBody = Static<typeof HealthBody>

const CheckResult = Type.Object({
  ok: Type.Boolean(),
  message: Type.Optional(Type.String({ description: 'Why the check failed, for a person.' })),
})

export const ReadyBody = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
    checks: Type.Object({
      database: CheckResult,
      defaultImage: CheckResult,
      network: CheckResult,
    }),
    code: Type.Optional(Type.Literal('not_ready', { description: 'On 503: the error code (docs/errors.md).' })),
    message: Type.Optional(Type.String({ description: 'On 503: the failed checks in one sentence.' })),
    requestId: Type.Optional(Type.String({ description: 'On 503: the id of this request.' })),
  },
  { description: 'Each check with its result; 503 when one failed.' },
)
export type ReadyBody = Static<typeof ReadyBody>
