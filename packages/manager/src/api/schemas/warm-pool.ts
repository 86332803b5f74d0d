import { Type, type Static } from 'typebox'

export const WarmPoolStatus = Type.Object(
  {
    enabled: Type.Boolean({ description: 'ENABLE_WARM_POOL=true and an effective target above 0.' }),
    target: Type.Integer({ description: 'min(WARM_POOL_TARGET, WARM_POOL_MAX_VMS).' }),
    ready: Type.Integer({ description: 'Warm VMs a create can take right now.' }),
    starting: Type.Integer({ description: 'Warm VMs still booting or resuming.' }),
    refilling: Type.Boolean(),
  },
  {},
)
export type WarmPoolStatus = Static<typeof WarmPoolStatus>
