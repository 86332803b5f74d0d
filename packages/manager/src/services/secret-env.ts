// secretEnv: "KEY=value" lists a VM's every exec/run gets, stored only encrypted. AES-256-GCM
// under a key derived (HKDF-SHA256) from VM_SECRET_KEY, with the VM's id as additional data,
// so a ciphertext copied onto another VM's row does not decrypt. Values never appear in an
// error message, a log line or an API response; names appear only where the caller needs them.
import crypto from 'node:crypto'
import { EnvListError, parseEnvList } from '@rds/protocol'
import { Errors } from '../errors.ts'
import type { VmRecord } from '../store/vms-repo.ts'

const VERSION = 'v1'

/**
 * Validates secretEnv by the one env-list reading, but in sentences that never repeat an entry or
 * a name (either may be a credential typed wrongly): the parser's own message is dropped.
 */
export function parseSecretEnv(list: string[]): Record<string, string> {
  try {
    return Object.fromEntries(parseEnvList(list))
  } catch (e) {
    if (!(e instanceof EnvListError)) throw e
    if (e.kind === 'bad_name') throw Errors.invalidEnv(`Invalid env var name in secretEnv at index ${e.index} (names match [A-Za-z_][A-Za-z0-9_]*)`)
    throw Errors.invalidEnv(`Invalid secretEnv entry at index ${e.index} (expected KEY=value; the entry is not repeated here)`)
  }
}

export function createSecretBox(vmSecretKey: string | undefined) {
  const key = vmSecretKey ? Buffer.from(crypto.hkdfSync('sha256', vmSecretKey, 'run-dat-sheesh', `secretEnv ${VERSION}`, 32)) : undefined
  const need = (): Buffer => {
    if (!key) throw Errors.secretKeyMissing()
    return key
  }
  function open(vmId: string, sealed: string): Record<string, string> {
    const [version, iv, tag, data] = sealed.split(':')
    if (version !== VERSION || !iv || !tag || data === undefined) throw Errors.secretEnvUnreadable()
    try {
      const d = crypto.createDecipheriv('aes-256-gcm', need(), Buffer.from(iv, 'base64')).setAAD(Buffer.from(vmId))
      d.setAuthTag(Buffer.from(tag, 'base64'))
      return JSON.parse(Buffer.concat([d.update(Buffer.from(data, 'base64')), d.final()]).toString('utf8')) as Record<string, string>
    } catch {
      // Wrong VM_SECRET_KEY, or a tampered/copied row: say so, never why in detail.
      throw Errors.secretEnvUnreadable()
    }
  }
  return {
    /** Fails (500 secret_key_missing) when VM_SECRET_KEY is unset, before anything is created. */
    requireKey: () => void need(),

    seal(vmId: string, env: Record<string, string>): string {
      const iv = crypto.randomBytes(12)
      const c = crypto.createCipheriv('aes-256-gcm', need(), iv).setAAD(Buffer.from(vmId))
      const data = Buffer.concat([c.update(JSON.stringify(env), 'utf8'), c.final()])
      return [VERSION, iv.toString('base64'), c.getAuthTag().toString('base64'), data.toString('base64')].join(':')
    },

    open,

    /** What a VM row stores: the sealed env, or null when it has none. */
    stored(vmId: string, env: Record<string, string>): string | null {
      return Object.keys(env).length ? this.seal(vmId, env) : null
    },

    /** A VM's secretEnv, decrypted for one call; {} when it has none. */
    envOf: (vm: Pick<VmRecord, 'id' | 'secretEnv'>): Record<string, string> => (vm.secretEnv ? open(vm.id, vm.secretEnv) : {}),
  }
}
export type SecretBox = ReturnType<typeof createSecretBox>
