// The quota a new user VM is admitted under: MAX_VMS for everyone, and QUOTA_MAX_VMS_PER_KEY
// for the VMs of one minted API key. The env API_KEY and the admin are the operator, bounded by
// MAX_VMS alone. Counting and inserting happen in one transaction in the store, so two creates
// of one key cannot both take the last place.
import type { Config } from '../config.ts'
import { Errors, type ApiError } from '../errors.ts'
import type { QuotaLimits, QuotaVerdict } from '../store/vms-repo.ts'

/** actorLabel() of a minted key ('key:<id>'); services/accounts/actor.ts. */
const MINTED_KEY = /^key:/

export function quotaLimits(config: Pick<Config, 'maxVms' | 'quotaMaxVmsPerKey'>, createdBy: string | null | undefined): QuotaLimits {
  const perKey = config.quotaMaxVmsPerKey > 0 && createdBy && MINTED_KEY.test(createdBy)
  return { maxVms: config.maxVms, ...(perKey ? { perCreator: { createdBy, max: config.quotaMaxVmsPerKey } } : {}) }
}

/** The API error of a refused insert (undefined: it was admitted). */
export function quotaError(verdict: QuotaVerdict, config: Pick<Config, 'maxVms' | 'quotaMaxVmsPerKey'>): ApiError | undefined {
  if (verdict === 'max_vms') return Errors.quotaExceeded('maxVms', config.maxVms)
  if (verdict === 'max_per_creator') return Errors.quotaExceeded('maxVmsPerKey', config.quotaMaxVmsPerKey)
  return undefined
}
