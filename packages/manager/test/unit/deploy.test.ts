// The deployment files without running them: the systemd unit passes `systemd-analyze verify`,
// compose.yaml turns into the podman arguments the stack needs, and the capability list is the
// same (and explained) everywhere it appears. The real run is test/deploy/container.test.ts.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { cgroupDirs, containerName, interpolate, loadCompose, runArgs, startOrder } from '../../../../deploy/podman-stack.ts'

const REPO = path.resolve(import.meta.dirname, '../../../..')
const UNIT = path.join(REPO, 'deploy/systemd/run-dat-sheesh.service')
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0

/** `systemd-analyze verify` of the unit with its paths pointed at this checkout (it checks that ExecStart exists). */
function verify(text: string): { status: number | null; stderr: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-unit-'))
  try {
    const file = path.join(dir, 'run-dat-sheesh.service')
    fs.writeFileSync(file, text.replaceAll('/opt/run-dat-sheesh', REPO))
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' })
    return { status: r.status, stderr: r.stderr.trim() }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe('systemd unit', () => {
  it.skipIf(!hasAnalyze)('passes systemd-analyze verify without a warning', () => {
    expect(verify(fs.readFileSync(UNIT, 'utf8'))).toEqual({ status: 0, stderr: '' })
  })

  it.skipIf(!hasAnalyze)('would be caught with a directive systemd does not know', () => {
    const broken = fs.readFileSync(UNIT, 'utf8').replace('KillMode=process', 'KillMode=process\nRestrictNamespaces=bogus')
    expect(verify(broken).stderr).toMatch(/namespace/)
  })

  it('keeps running VMs on stop, takes no mount namespace of its own and lets the first start build the guest image', () => {
    const unit = fs.readFileSync(UNIT, 'utf8')
    const set = (key: string) => unit.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1))
    expect(set('KillMode')).toEqual(['process'])
    for (const key of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'DevicePolicy', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'MemoryDenyWriteExecute', 'ReadWritePaths', 'RestrictSUIDSGID', 'UMask']) {
      expect(set(key), key).toEqual([])
    }
  })
})

describe('compose.yaml under podman-stack', () => {
  const compose = loadCompose(path.join(REPO, 'compose.yaml'), { RDS_HTTPS_BIND: '127.0.0.1:8443', API_KEY: 'k'.repeat(20) })

  it('interpolates like Compose', () => {
    expect(interpolate('${A:-x} ${B:-y} ${C} $${D}', { A: '', B: 'b' })).toBe('x b  ${D}')
    expect(interpolate('${A-x}', { A: '' })).toBe('')
  })

  it('starts the manager before Caddy, which joins its network namespace', () => {
    expect(startOrder(compose)).toEqual(['manager', 'caddy'])
    const caddy = runArgs('p', 'caddy', compose.services.caddy!, compose, true)
    expect(caddy.join(' ')).toContain(`--network container:${containerName('p', 'manager')}`)
    expect(caddy).not.toContain('--publish')
  })

  it('gives the manager its devices, capabilities, volumes, RAM tmpfs and Caddy\'s ports', () => {
    const args = runArgs('p', 'manager', compose.services.manager!, compose, true).join(' ')
    expect(args).toContain('--device /dev/net/tun')
    // KVM only where the host has the device; without it the stack still starts (TCG).
    expect(args.includes('--device /dev/kvm')).toBe(fs.existsSync('/dev/kvm'))
    expect(args).toContain('--cap-drop ALL')
    expect(args).toContain('--cap-add SYS_ADMIN')
    expect(args).toContain('--security-opt unmask=/proc/sys')
    expect(args).toContain('--volume p_data:/var/lib/run-dat-sheesh:rw')
    expect(args).toContain('--volume p_images:/var/lib/run-dat-sheesh-images:rw')
    expect(args).toContain('--tmpfs /run/rds-ram:rw,mode=0700,size=8g')
    expect(args).toContain('--publish 127.0.0.1:8443:443')
    expect(args).toContain('--env API_KEY=kkkkkkkkkkkkkkkkkkkk')
    expect(args).toContain('--network slirp4netns')
    // On a cgroup v1 host the delegated subtree is one directory per controller.
    expect(args).toContain('--volume /sys/fs/cgroup/memory/run-dat-sheesh:/sys/fs/cgroup/memory:rw')
    expect(args).toContain('--volume /sys/fs/cgroup/pids/run-dat-sheesh:/sys/fs/cgroup/pids:rw')
  })

  it('mounts a v2 subtree as the whole cgroup tree and refuses a nested v1 source', () => {
    expect(cgroupDirs('/sys/fs/cgroup/x', false)).toEqual([{ host: '/sys/fs/cgroup/x', target: '/sys/fs/cgroup' }])
    expect(() => cgroupDirs('/sys/fs/cgroup/a/b', true)).toThrow(/directly under/)
  })

  it('asks for the same capabilities as the systemd unit, each explained in docs/operations.md', () => {
    const caps = compose.services.manager!.cap_add!
    const unit = fs.readFileSync(UNIT, 'utf8')
    const bounding = /^CapabilityBoundingSet=(.*)$/m.exec(unit)![1]!.split(' ').map((c) => c.replace(/^CAP_/, ''))
    expect([...bounding].sort()).toEqual([...caps].sort())
    const ops = fs.readFileSync(path.join(REPO, 'docs/operations.md'), 'utf8')
    for (const c of caps) expect(ops, c).toMatch(new RegExp(`\`${c}\``))
  })
})
