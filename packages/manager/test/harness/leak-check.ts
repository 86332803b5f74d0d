// Setup file of the VM project: a test file must leave the host as it found it. Before the file
// runs (this module is imported first) the host's run-dat-sheesh resources are listed; after its
// last afterAll (this one was registered first, so it runs last) they are listed again, and
// whatever is new, ours and still there after a short grace fails the file, named.
//
// Other work on the host never trips it: what existed before the file is not looked at (a
// developer's own manager and its VMs), resources named after a manager instance count only for
// instances this file's ManagerProcesses made, and the file gets a TMPDIR of its own, so
// temporary directories of other test runs are not even seen.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll } from 'vitest'
import { ownInstances } from './manager-process.ts'

const GRACE_MS = 5000

// Before the test file is imported: its temporary directories, and its managers', land here.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-vmtest-'))
fs.chmodSync(tmp, 0o755)
process.env.TMPDIR = tmp

/** Each resource by a key that changes when it is replaced (a pid is reused, a name is not). */
type HostState = Map<string, string>

/** The manager instance a host resource is named after (host-network.ts, qemu/args.ts), if any. */
const INSTANCE_NAMED = /^(?:rds-|rds_|rds|rds:)([0-9a-f]{10})(?::|$)/

function lines(cmd: string, args: string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean)
  } catch {
    return []
  }
}

function processes(state: HostState): void {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean)
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (fields[0] === 'Z') continue
      const key = `${pid} ${fields[19]}`
      const name = args.includes('-name') ? args[args.indexOf('-name') + 1] : undefined
      // The KVM probe's marker names no instance; its files are under the manager's STORAGE_ROOT.
      if (name?.startsWith('rds:') && (ours(name) || args.some((a) => a.includes(tmp)))) state.set(`qemu ${key}`, `QEMU process ${pid} (${name})`)
      // Managers, world servers …: a child of this test process still running.
      else if (Number(fields[1]) === process.pid) state.set(`child ${key}`, `child process ${pid}: ${args.join(' ').slice(0, 200)}`)
    } catch {
      // exited meanwhile
    }
  }
}

/**
 * Named after no instance, or after one of this file's. The list before the file takes every
 * instance: which are the file's is known only at its end (the shared manager's becomes one when
 * the file asks for it, and its network existed before).
 */
let everyInstance = false
function ours(name: string): boolean {
  const instance = INSTANCE_NAMED.exec(name)?.[1]
  return everyInstance || instance === undefined || ownInstances.has(instance)
}

function snapshot(): HostState {
  const state: HostState = new Map()
  processes(state)
  const linkName = (l: string) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]
  // Everything the manager and the test harness make on the host is named rds…; TAPs are made in
  // a manager's namespace, so one on the host is a leak whatever its name.
  const named = (name: string | undefined): name is string => !!name && name.startsWith('rds') && ours(name)
  for (const name of lines('ip', ['-o', 'link', 'show']).map(linkName)) if (named(name)) state.set(`link ${name}`, `network link ${name}`)
  for (const name of lines('ip', ['-o', 'link', 'show', 'type', 'tun']).map(linkName)) if (name && ours(name)) state.set(`link ${name}`, `TAP link ${name}`)
  for (const name of lines('ip', ['netns', 'list']).map((l) => l.split(' ')[0])) if (named(name)) state.set(`netns ${name}`, `network namespace ${name}`)
  for (const l of lines('nft', ['list', 'tables'])) if (named(l.split(' ').at(-1))) state.set(`nft ${l}`, `nft ${l}`)
  for (const e of fs.readdirSync('/dev/shm')) if (named(e)) state.set(`shm ${e}`, `/dev/shm/${e}`)
  // Each VMM's cgroup (runtime/vmm/confinement/cgroups.ts) and its instance's parent, in every tree.
  for (const top of ['/sys/fs/cgroup', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/cpu', '/sys/fs/cgroup/pids']) {
    for (const e of dirs(top).filter(named)) {
      state.set(`cgroup ${top}/${e}`, `cgroup ${top}/${e}`)
      for (const vm of dirs(path.join(top, e))) state.set(`cgroup ${top}/${e}/${vm}`, `cgroup ${top}/${e}/${vm}`)
    }
  }
  for (const e of fs.readdirSync(tmp)) state.set(`tmp ${e}`, path.join(tmp, e))
  return state
}

function dirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)
  } catch {
    return []
  }
}

const MANAGER_TABLE = /^table ip rds_[0-9a-f]{10}$/

function added(before: HostState, after: HostState): string[] {
  // The forwarding guard is shared by all managers: it stays, rightly, while any other runs.
  const othersRun = lines('nft', ['list', 'tables']).some((l) => MANAGER_TABLE.test(l))
  return [...after].filter(([key]) => !before.has(key) && !(othersRun && key === 'nft table ip rds_forwarding')).map(([, what]) => what)
}

everyInstance = true
const before = snapshot()
everyInstance = false

afterAll(async () => {
  const deadline = Date.now() + GRACE_MS
  let left = added(before, snapshot())
  // Processes take a moment to exit and namespaces to go once their last process has.
  while (left.length && Date.now() < deadline) {
    await sleep(250)
    left = added(before, snapshot())
  }
  // Kept when not empty, for whoever looks into the failure.
  if (fs.readdirSync(tmp).length === 0) fs.rmdirSync(tmp)
  if (left.length) throw new Error(`this test file left behind on the host (clean it up in its afterAll):\n  ${left.join('\n  ')}`)
}, GRACE_MS + 10_000)
