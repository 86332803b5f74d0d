// Runs compose.yaml with plain Podman: node deploy/podman-stack.ts up|down [--project NAME] [--volumes]
//
// Debian 12's podman-compose (1.0.3) always attaches services to a bridge network, and Podman's
// bridge networks (netavark) need iptables rules and turn on host-wide IPv4 forwarding, which this
// project's manager deliberately never does (docs/operations.md, "VM networking on the host").
// So the stack runs the way compose.yaml describes it — the manager owning a network namespace
// with user-mode networking (slirp4netns), Caddy joining it (`network_mode: container:…`) — from
// the same file, with the same capabilities, devices, volumes and limits.
//
// Two things compose cannot say are decided here: the OCI runtime (crun 1.8 refuses hosts with
// controllers on both cgroup v1 and v2, as the development machines have; runc works) and where
// the manager's delegated cgroup subtree lives on a cgroup v1 host (one directory per controller).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'

const REPO = path.resolve(import.meta.dirname, '..')
const CGROUP_TARGET = '/sys/fs/cgroup'
const KVM_DEVICE = '/dev/kvm'
const V1_CONTROLLERS = ['memory', 'cpu', 'pids']

interface Service {
  image: string
  network_mode?: string
  depends_on?: string[]
  environment?: Record<string, string | number | boolean | null>
  volumes?: string[]
  tmpfs?: string[]
  devices?: string[]
  cap_drop?: string[]
  cap_add?: string[]
  security_opt?: string[]
  ports?: string[]
  ulimits?: Record<string, number | { soft: number; hard: number }>
  restart?: string
}
interface Compose {
  services: Record<string, Service>
  volumes?: Record<string, unknown>
}

/** `${NAME}`, `${NAME:-default}` and `$$` as Compose interpolates them. */
export function interpolate(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (whole, name: string | undefined, fallback: string | undefined) => {
    if (whole === '$$') return '$'
    const value = env[name!]
    return value === undefined || (value === '' && whole.includes(':-')) ? (fallback ?? '') : value
  })
}

export function loadCompose(file: string, env: NodeJS.ProcessEnv): Compose {
  return parseYaml(interpolate(fs.readFileSync(file, 'utf8'), env)) as Compose
}

/** Services in start order: each after those it depends on. */
export function startOrder(compose: Compose): string[] {
  const done: string[] = []
  const visit = (name: string, seen: string[]) => {
    if (done.includes(name)) return
    if (seen.includes(name)) throw new Error(`compose: dependency cycle through ${name}`)
    for (const dep of compose.services[name]?.depends_on ?? []) visit(dep, [...seen, name])
    done.push(name)
  }
  for (const name of Object.keys(compose.services)) visit(name, [])
  return done
}

export function containerName(project: string, service: string): string {
  return `${project}-${service}`
}

/** cgroup v1 controllers mounted one per tree (the host's v2 tree, if any, without them). */
function cgroupV1(): boolean {
  const v2 = fs.existsSync(path.join(CGROUP_TARGET, 'cgroup.controllers'))
  return !v2 && V1_CONTROLLERS.every((c) => fs.existsSync(path.join(CGROUP_TARGET, c, 'cgroup.procs')))
}

/** The host directories of the manager's delegated cgroup subtree named by a volume source. */
export function cgroupDirs(source: string, v1: boolean): Array<{ host: string; target: string }> {
  if (!v1) return [{ host: source, target: CGROUP_TARGET }]
  const name = path.relative(CGROUP_TARGET, source)
  if (name.startsWith('..') || name.includes('/')) throw new Error(`compose: the cgroup volume source must be a directory directly under ${CGROUP_TARGET}, not ${source}`)
  return V1_CONTROLLERS.map((c) => ({ host: path.join(CGROUP_TARGET, c, name), target: path.join(CGROUP_TARGET, c) }))
}

function ociRuntime(): string[] {
  if (process.env.RDS_OCI_RUNTIME) return ['--runtime', process.env.RDS_OCI_RUNTIME]
  const hybrid = fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'cgroup2') && cgroupV1()
  return hybrid ? ['--runtime', 'runc'] : []
}

/** The `podman run` arguments of one service. */
export function runArgs(project: string, name: string, s: Service, compose: Compose, v1: boolean): string[] {
  const args = ['run', '--detach', '--name', containerName(project, name), '--label', `io.podman.compose.project=${project}`]
  if (s.restart) args.push('--restart', s.restart === 'unless-stopped' ? 'always' : s.restart)
  const net = s.network_mode ?? 'slirp4netns'
  if (net.startsWith('service:')) {
    const other = net.slice('service:'.length)
    args.push('--network', `container:${containerName(project, other)}`)
  } else {
    args.push('--network', net)
    // Ports of the services that join this namespace are declared (and published) here, as in Compose.
    for (const p of s.ports ?? []) args.push('--publish', p)
  }
  // `KEY:` with nothing after it (what `\${VAR:-}` leaves) is YAML null: unset, as Compose does.
  for (const [k, v] of Object.entries(s.environment ?? {})) if (v !== null && v !== undefined) args.push('--env', `${k}=${v}`)
  for (const v of s.volumes ?? []) {
    const [source, target, mode = 'rw'] = v.split(':')
    if (target === CGROUP_TARGET) {
      for (const d of cgroupDirs(source!, v1)) args.push('--volume', `${d.host}:${d.target}:${mode}`)
    } else if (compose.volumes && source! in compose.volumes) {
      args.push('--volume', `${project}_${source}:${target}:${mode}`)
    } else {
      args.push('--volume', `${source}:${target}:${mode}`)
    }
  }
  for (const t of s.tmpfs ?? []) args.push('--tmpfs', t)
  for (const d of s.devices ?? []) {
    // KVM is optional: without it the manager runs its VMs under TCG. Podman refuses a device the
    // host does not have, so it is left out, and said so, instead of failing the whole stack.
    if (d.split(':')[0] === KVM_DEVICE && !fs.existsSync(KVM_DEVICE)) {
      console.error(`podman-stack: this host has no ${KVM_DEVICE}: left out, VMs run under TCG (software emulation)`)
      continue
    }
    args.push('--device', d)
  }
  for (const c of s.cap_drop ?? []) args.push('--cap-drop', c)
  for (const c of s.cap_add ?? []) args.push('--cap-add', c)
  for (const o of s.security_opt ?? []) args.push('--security-opt', o)
  for (const [k, v] of Object.entries(s.ulimits ?? {})) args.push('--ulimit', typeof v === 'number' ? `${k}=${v}:${v}` : `${k}=${v.soft}:${v.hard}`)
  args.push(s.image)
  return args
}

function podman(args: string[], opts: { check?: boolean } = {}): string {
  const r = spawnSync('podman', args, { encoding: 'utf8' })
  if (opts.check !== false && r.status !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`)
  return r.stdout.trim()
}

function cgroupSources(compose: Compose, v1: boolean): string[] {
  return Object.values(compose.services).flatMap((s) => (s.volumes ?? []).map((v) => v.split(':')).filter(([, t]) => t === CGROUP_TARGET)
    .flatMap(([source]) => cgroupDirs(source!, v1).map((d) => d.host)))
}

export function up(project: string, compose: Compose): void {
  // No registry to pull from: the images are built on this host.
  for (const s of Object.values(compose.services)) {
    if (spawnSync('podman', ['image', 'exists', s.image]).status !== 0) throw new Error(`image ${s.image} not found: build it first (sh deploy/build.sh)`)
  }
  const v1 = cgroupV1()
  for (const dir of cgroupSources(compose, v1)) fs.mkdirSync(dir, { recursive: true })
  for (const name of startOrder(compose)) podman([...ociRuntime(), ...runArgs(project, name, compose.services[name]!, compose, v1)])
}

/**
 * Run inside the manager's container before it stops: a container stop kills every QEMU in it at
 * once, a power cut for the guests (their last seconds of writes would be lost). So running and
 * paused VMs are stopped through the API first, which powers each guest off cleanly.
 */
const STOP_VMS = `
const key = process.env.API_KEY || (await import('node:fs')).readFileSync(process.env.STORAGE_ROOT + '/api-key', 'utf8').trim()
const base = 'http://127.0.0.1:' + (process.env.PORT || 3000)
const headers = { 'x-api-key': key }
const vms = await (await fetch(base + '/v1/vms', { headers })).json()
const live = vms.filter((v) => v.state === 'RUNNING' || v.state === 'PAUSED')
const codes = await Promise.all(live.map((v) => fetch(base + '/v1/vms/' + v.id + '/stop', { method: 'POST', headers }).then((r) => r.status)))
console.log('stopped ' + codes.filter((c) => c === 204).length + ' of ' + live.length + ' running VMs')`

function stopVms(container: string): void {
  const r = spawnSync('podman', ['exec', container, 'node', '--input-type=module', '-e', STOP_VMS], { encoding: 'utf8' })
  if (r.status === 0) process.stderr.write(`podman-stack: ${r.stdout.trim()}\n`)
  else if (!/no such container|not running|no container with/i.test(r.stderr)) process.stderr.write(`podman-stack: could not stop the VMs cleanly (${r.stderr.trim().split('\n').at(-1)}); stopping the container kills them\n`)
}

/** Stops the VMs cleanly, then stops and removes the containers (dependents first), the delegated cgroups and, asked, the volumes. */
export function down(project: string, compose: Compose, removeVolumes: boolean): void {
  if (compose.services.manager) stopVms(containerName(project, 'manager'))
  for (const name of startOrder(compose).reverse()) {
    const c = containerName(project, name)
    podman(['stop', '--ignore', '--time', '20', c])
    podman(['rm', '--ignore', '--force', c])
  }
  // Empty by now (the manager's VMMs died with its container); nested VM cgroups first.
  for (const dir of cgroupSources(compose, cgroupV1())) removeCgroupTree(dir)
  if (removeVolumes) for (const v of Object.keys(compose.volumes ?? {})) podman(['volume', 'rm', '--force', `${project}_${v}`], { check: false })
}

function removeCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name))
  fs.rmdirSync(dir)
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { project: { type: 'string', default: 'run-dat-sheesh' }, file: { type: 'string', default: path.join(REPO, 'compose.yaml') }, volumes: { type: 'boolean', default: false } },
  })
  const compose = loadCompose(values.file, { ...process.env, RDS_PROJECT: values.project })
  const verb = positionals[0]
  try {
    if (verb === 'up') up(values.project, compose)
    else if (verb === 'down') down(values.project, compose, values.volumes)
    else throw new Error('usage: node deploy/podman-stack.ts up|down [--project NAME] [--file compose.yaml] [--volumes]')
  } catch (err) {
    process.stderr.write(`podman-stack: ${(err as Error).message}\n`)
    process.exit(1)
  }
}
