// A VM whose QEMU runs with a bounded TCG translation cache (QEMU_TB_SIZE_MB, 128 MiB by default:
// the shared manager runs production defaults) still works after the guest ran its largest code
// (Node: V8 and its compiled code), and the user's code keeps its isolation: uid 1000, no_new_privs, the user
// cgroup, nothing of one call's environment in the next. One VM of the template shape, shared.
import fs from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { qemuProcessesOf, type ManagerClient } from '../harness/manager-process.ts'
import { sharedManager, VM_ORIGINS } from '../harness/shared-manager.ts'
import { DEFAULT_TB_SIZE_MB } from '../../src/config.ts'

let api: ManagerClient
let vmId: string

beforeAll(async () => {
  api = await sharedManager()
  const r = await api.request('POST', '/v1/vms', { ...VM_ORIGINS[0].shape, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
  vmId = r.body.id
})

afterAll(async () => {
  if (vmId) await api.request('DELETE', `/v1/vms/${vmId}`)
})

const exec = async (cmd: string, env?: Record<string, string>) => {
  const r = await api.request('POST', `/v1/vms/${vmId}/exec`, { cmd, timeoutMs: 120_000, ...(env ? { env } : {}) })
  expect(r.status).toBe(200)
  return r.body as { exitCode: number; stdout: string; stderr: string }
}

it('the VM\'s QEMU runs with the configured translation cache under TCG', async () => {
  const argv = qemuProcessesOf(api.storageRoot)
    .map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))
    .find((args) => args[args.indexOf('-name') + 1]?.endsWith(`:${vmId}`))
  expect(argv).toBeDefined()
  const value = argv![argv!.indexOf('-accel') + 1]
  // KVM has no translation cache: the option is TCG's only.
  expect(value).toBe(value === 'kvm' ? 'kvm' : `tcg,tb-size=${DEFAULT_TB_SIZE_MB}`)
})

it('keeps answering after Node ran, with the user\'s isolation intact', async () => {
  // V8 compiling and running thousands of distinct functions: new guest code to translate.
  const churn = 'node -e "let s = 0; for (let i = 0; i < 3000; i++) s += new Function(\'x\', \'return x * \' + i + \' + \' + (i % 7))(i); console.log(s > 0)"'
  for (let i = 0; i < 2; i++) expect(await exec(churn)).toMatchObject({ exitCode: 0, stdout: 'true\n' })
  const first = await exec('id -u; grep NoNewPrivs /proc/self/status; cat /proc/self/cgroup; echo "[$CARRY]"; export CARRY=leak', { CARRY: 'one' })
  const [uid, nnp, ...rest] = first.stdout.trim().split('\n')
  expect(uid).toBe('1000')
  expect(nnp).toMatch(/^NoNewPrivs:\s+1$/)
  // Each call in a cgroup of its own under the user's parent group (the agent's sandbox/cgroup.ts).
  expect(rest.join('\n')).toMatch(/^0::\/rds\/exec-[^/\n]+$/m)
  expect(rest.at(-1)).toBe('[one]')
  // The next call sees none of the first one's environment.
  expect((await exec('echo "[${CARRY:-}]"')).stdout).toBe('[]\n')
})

it('starts the user\'s processes without address-space randomisation under TCG only, and nothing else', async () => {
  const argv = qemuProcessesOf(api.storageRoot)
    .map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))
    .find((args) => args[args.indexOf('-name') + 1]?.endsWith(`:${vmId}`))
  const tcg = argv![argv!.indexOf('-accel') + 1]!.startsWith('tcg')
  // SANDBOX_ASLR=auto: ADDR_NO_RANDOMIZE (0x0040000) in the personality of user code under TCG.
  const expected = tcg ? '00040000' : '00000000'
  const r = await exec('cat /proc/self/personality; cat /proc/sys/kernel/randomize_va_space; bash -c "cat /proc/self/personality"')
  // The guest's own setting is untouched (the agent and PID 1 keep full randomisation); the flag
  // is the user's processes' own and is inherited by what they start.
  expect(r.stdout.split('\n')).toEqual([expected, '2', expected, ''])
  const run = await api.request('POST', `/v1/vms/${vmId}/run-js`, { code: "result.set(require('node:fs').readFileSync('/proc/self/personality', 'utf8').trim())", timeoutMs: 120_000 })
  expect(run.body).toMatchObject({ exitCode: 0, result: expected })
  // Two processes of the same program see the same layout under TCG, different ones otherwise.
  const maps = await exec('for i in 1 2; do grep -m1 libc /proc/self/maps | cut -d- -f1; done')
  const [a, b] = maps.stdout.trim().split('\n')
  expect(a === b).toBe(tcg)
})
