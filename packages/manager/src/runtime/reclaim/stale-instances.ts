// Startup reclamation of what managers that are gone left on the host. A manager stopped with VMs
// (or killed) keeps its namespace, veth, route, host table and guest RAM directory on purpose: its
// next start re-attaches. But an instance whose manager never comes back (a test's temporary
// STORAGE_ROOT, a removed checkout) keeps them for ever, and its route to the VM network makes the
// next manager on the same address plan refuse to start. So a starting manager removes the
// leftovers of every other instance in which nothing is alive: no manager holding its mark, no
// QEMU with its `rds:<instance>:` marker, no process serving DNS on its link address (a manager
// from before the mark existed), no task in its VMMs' cgroups. A live instance is never touched.
import fs from 'node:fs'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { hostIfOf, netnsOf, releaseForwarding } from '../network/host-network.ts'
import { deleteHostTable, hostTableName } from '../network/nft-ruleset.ts'
import { listPids, processCmdline } from '../process/proc.ts'
import { run } from '../process/run.ts'
import { ramDirProblem } from '../storage/ram-dir.ts'
import { instanceOf, tryHoldMark, type InstanceMark } from './instance-mark.ts'
import { detectCgroupLayout, VmmCgroups } from '../vmm/confinement/cgroups.ts'
import { markedVmId } from '../vmm/qemu/args.ts'

const INSTANCE = '[0-9a-f]{10}'
const NETNS = new RegExp(`^rds-(${INSTANCE})$`)
const HOST_IF = new RegExp(`^rds(${INSTANCE})$`)
const TABLE = new RegExp(`^rds_(${INSTANCE})$`)
/** Another live manager holds this STORAGE_ROOT: a start-up refusal, as a configuration error is. */
export class InstanceTakenError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'InstanceTakenError'
  }
}

/** The default VM_RAM_DIR; a configured one cannot be found from outside its manager. */
const SHM = '/dev/shm'
const RAM_DIR = NETNS
const CGROUP = NETNS

export interface Leftovers {
  instance: string
  netns: boolean
  hostIf: boolean
  table: boolean
  ramDir: boolean
  cgroup: boolean
}

/** `left`: what was not ours to remove although the instance is dead (a RAM directory someone else made). */
export type Reclaimed = { instance: string; removed: string[]; left: string[] } | { instance: string; kept: string }

/** Every instance that has something on this host, named as host-network.ts names it. */
export async function findLeftovers(): Promise<Leftovers[]> {
  const found = new Map<string, Leftovers>()
  const mark = (instance: string | undefined, what: 'netns' | 'hostIf' | 'table' | 'ramDir' | 'cgroup') => {
    if (!instance) return
    const l = found.get(instance) ?? { instance, netns: false, hostIf: false, table: false, ramDir: false, cgroup: false }
    l[what] = true
    found.set(instance, l)
  }
  const netns = (await run('ip', ['-j', 'netns', 'list'])).trim()
  for (const n of (netns ? JSON.parse(netns) : []) as Array<{ name: string }>) mark(NETNS.exec(n.name)?.[1], 'netns')
  for (const l of JSON.parse(await run('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>) mark(HOST_IF.exec(l.ifname)?.[1], 'hostIf')
  const tables = JSON.parse(await run('nft', ['-j', 'list', 'tables', 'ip'])) as { nftables: Array<{ table?: { name: string } }> }
  for (const t of tables.nftables) mark(t.table && TABLE.exec(t.table.name)?.[1], 'table')
  for (const d of fs.readdirSync(SHM, { withFileTypes: true })) if (d.isDirectory()) mark(RAM_DIR.exec(d.name)?.[1], 'ramDir')
  const cgroups = detectCgroupLayout()
  for (const name of cgroups ? VmmCgroups.instanceParents(cgroups) : []) mark(CGROUP.exec(name)?.[1], 'cgroup')
  return [...found.values()]
}

/** Why the instance counts as alive without asking its mark, or undefined. */
async function runningParts(instance: string): Promise<string | undefined> {
  for (const pid of listPids()) {
    if (markedVmId(processCmdline(pid), instance) !== undefined) return `QEMU process ${pid} runs with its marker`
  }
  // A VMM still exiting, or one being launched, is in its cgroup before (and after) its marker shows.
  const cgroups = detectCgroupLayout()
  const task = cgroups ? new VmmCgroups(cgroups, instance).tasks()[0] : undefined
  if (task !== undefined) return `process ${task} is in the cgroup of one of its VMMs`
  const address = await linkAddress(instance)
  if (address && servesDns(address)) return `a process serves DNS on its link address ${address}`
  return undefined
}

async function linkAddress(instance: string): Promise<string | undefined> {
  try {
    const links = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show', 'dev', hostIfOf(instance)])) as Array<{ addr_info?: Array<{ local?: string }> }>
    return links[0]?.addr_info?.[0]?.local
  } catch {
    return undefined
  }
}

/** A UDP socket bound to address:53, or a TCP one listening there; their owner is alive by definition. */
function servesDns(address: string): boolean {
  // /proc/net prints the address as the host-order value of the network-order bytes.
  const hex = Buffer.from(address.split('.').map(Number)).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0')
  const local = `${hex}:0035`
  const sockets = (file: string) => fs.readFileSync(file, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
  return sockets('/proc/net/udp').some((f) => f[1] === local) || sockets('/proc/net/tcp').some((f) => f[1] === local && f[3] === '0A')
}

/**
 * Removes one instance's leftovers if nothing of it is alive. Its mark is held meanwhile, so a
 * manager of that instance cannot start halfway through (it would refuse: mark held).
 */
export async function reclaimInstance(instance: string): Promise<Reclaimed> {
  const alive = await runningParts(instance)
  if (alive) return { instance, kept: alive }
  const attempt = await tryHoldMark(instance)
  // Whoever holds it, even another user's process: keeping is the safe side.
  if (!('mark' in attempt)) return { instance, kept: `its mark is held${attempt.heldBy ? ` by process ${attempt.heldBy.pid} (uid ${attempt.heldBy.uid})` : ''}` }
  const { mark } = attempt
  const removed: string[] = []
  const left: string[] = []
  try {
    // The veth first: deleting it takes both ends and the route through it at once, while a
    // deleted namespace destroys its devices later, in the background.
    if (await linkExists(hostIfOf(instance))) {
      await run('ip', ['link', 'del', hostIfOf(instance)])
      removed.push(`link ${hostIfOf(instance)} and its routes`)
    }
    if (fs.existsSync(`/run/netns/${netnsOf(instance)}`)) {
      await run('ip', ['netns', 'del', netnsOf(instance)])
      removed.push(`netns ${netnsOf(instance)}`)
    }
    if (await tableExists(hostTableName(instance))) {
      await run('nft', ['-f', '-'], { input: deleteHostTable(instance) })
      removed.push(`nft table ip ${hostTableName(instance)}`)
    }
    // Guest RAM of VMMs that are gone: nothing can map it again. /dev/shm is everyone's, so only
    // a directory that passes the manager's own check is emptied (root's, 0700: nobody else can
    // have put links in it), and links in it are unlinked, never followed.
    const ram = `${SHM}/${netnsOf(instance)}`
    if (fs.lstatSync(ram, { throwIfNoEntry: false })?.isDirectory()) {
      const problem = ramDirProblem(ram)
      if (problem) left.push(problem)
      else {
        for (const e of fs.readdirSync(ram, { withFileTypes: true })) if (!e.isDirectory()) fs.unlinkSync(path.join(ram, e.name))
        fs.rmdirSync(ram)
        removed.push(`directory ${ram}`)
      }
    }
    // The cgroups of its VMMs: empty now that none runs (a cgroup with tasks cannot be removed).
    const cgroups = detectCgroupLayout()
    if (cgroups && VmmCgroups.instanceParents(cgroups).includes(`rds-${instance}`)) {
      await new VmmCgroups(cgroups, instance).sweep(() => false)
      removed.push(`cgroup rds-${instance}`)
    }
  } finally {
    await mark.release()
  }
  // Only acts when no manager's table is left on the host.
  if (removed.length) await releaseForwarding()
  return { instance, removed, left }
}

async function linkExists(ifname: string): Promise<boolean> {
  return (JSON.parse(await run('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).some((l) => l.ifname === ifname)
}

async function tableExists(name: string): Promise<boolean> {
  const tables = JSON.parse(await run('nft', ['-j', 'list', 'tables', 'ip'])) as { nftables: Array<{ table?: { name: string } }> }
  return tables.nftables.some((t) => t.table?.name === name)
}

/** Reclaims every other instance whose leftovers nothing alive owns. */
export async function reclaimStaleInstances(own: string, log: FastifyBaseLogger): Promise<Reclaimed[]> {
  const results: Reclaimed[] = []
  for (const l of await findLeftovers()) {
    if (l.instance === own) continue
    let r: Reclaimed
    try {
      r = await reclaimInstance(l.instance)
    } catch (err) {
      log.warn({ instance: l.instance, err: (err as Error).message }, 'could not remove what a manager that is gone left on the host')
      continue
    }
    if ('removed' in r) log.info({ instance: r.instance, removed: r.removed, left: r.left }, 'removed what a manager that is gone left on the host')
    else log.info({ instance: r.instance, reason: r.kept }, 'another manager instance is alive on this host; its resources are left alone')
    results.push(r)
  }
  return results
}

let held: InstanceMark | undefined

/** Start-up, before anything is created: this manager's mark, then the leftovers of dead instances. */
export async function claimInstance(storageRoot: string, log: FastifyBaseLogger): Promise<void> {
  await holdOwnMark(storageRoot, log)
  await reclaimStaleInstances(instanceOf(storageRoot), log).catch((err: Error) => log.warn({ err: err.message }, 'could not look for what other manager instances left on the host'))
}

/** Held until the process ends; a second manager on the same STORAGE_ROOT is refused. */
export async function holdOwnMark(storageRoot: string, log: FastifyBaseLogger): Promise<void> {
  const instance = instanceOf(storageRoot)
  for (let attempt = 1; !held; attempt++) {
    const r = await tryHoldMark(instance)
    if ('mark' in r) {
      held = r.mark
      return
    }
    const by = r.heldBy
    // Anyone can bind an abstract name; only a process of our own user (or root) can be a manager.
    if (by && by.uid !== 0 && by.uid !== process.getuid?.()) {
      log.warn({ pid: by.pid, uid: by.uid }, 'this instance\'s mark is held by a process of another user, not a manager; running without the mark')
      return
    }
    // Its holder may have exited between the bind and the lookup: once more.
    if (by || attempt > 1) throw new InstanceTakenError(`another manager${by ? ` (pid ${by.pid})` : ''} is running with STORAGE_ROOT=${storageRoot} (instance ${instance}); stop it first`)
  }
}
