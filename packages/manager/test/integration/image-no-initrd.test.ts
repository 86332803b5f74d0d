// The original's image shape, kernel + rootfs and no initrd, booted for real: the kernel is the
// all-built-in test kernel (scripts/build-test-kernel.ts, which `npm test` runs first), the
// rootfs the default image's own. rds-init then builds the overlay root from the image it was
// started from. Cold boot, image seed, snapshot clone and stop/start all run on it; Debian's
// kernel, whose drivers are modules, still gets the clear 400 (and no seed).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { recipeHash } from '../../../../guest/image/src/index.ts'
import { cachedTestKernel } from '../../../../guest/kernel/build.ts'
import { CACHE_DIR, ManagerProcess, qemuProcessesOf } from '../harness/manager-process.ts'
import { tarGz } from '../harness/archives.ts'

const imageDir = path.join(CACHE_DIR, 'images', recipeHash())
const testKernel = cachedTestKernel(CACHE_DIR)

let mgr: ManagerProcess
let img: string
let vm: string

async function putFile(imageId: string, part: string, file: string): Promise<number> {
  const r = await mgr.fetch(`/v1/images/${imageId}/${part}`, {
    method: 'PUT',
    headers: { 'x-api-key': mgr.apiKey, 'content-type': 'application/octet-stream' },
    body: fs.createReadStream(file) as unknown as BodyInit,
    duplex: 'half',
  } as RequestInit)
  return r.status
}

async function newImage(name: string, kernel: string): Promise<string> {
  const r = await mgr.request('POST', '/v1/images', { name, description: 'kernel + rootfs, no initrd' })
  expect(r.status).toBe(201)
  expect(await putFile(r.body.id, 'kernel', kernel)).toBe(204)
  expect(await putFile(r.body.id, 'rootfs', path.join(imageDir, 'rootfs.ext4'))).toBe(204)
  return r.body.id
}

const qemuCmdline = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')

beforeAll(async () => {
  if (!testKernel) throw new Error('no test kernel in the cache: run node scripts/build-test-kernel.ts (npm test does)')
  // Seeds on, for this image only (no default image), template shape only: the seed is one boot.
  mgr = new ManagerProcess({ RDS_SKIP_DEFAULT_IMAGE: 'true', ENABLE_IMAGE_SEED: 'true', SNAPSHOT_TEMPLATE_CPU: '1', SNAPSHOT_TEMPLATE_MEM_MB: '256', SEED_SHAPES_MAX: '1' })
  await mgr.start()
  img = await newImage('fc-kernel', testKernel)
})

afterAll(async () => {
  await mgr?.cleanup()
})

describe('an image of kernel + rootfs whose kernel has its drivers built in', () => {
  it('boots a VM without an initrd (201), rooted on the image through the overlay disk', async () => {
    expect((await mgr.request('GET', '/v1/images')).body.find((i: { id: string }) => i.id === img)).toMatchObject({ hasKernel: true, hasInitrd: false, hasRootfs: true })
    // Not the template shape, so this is a cold boot whatever the seed is doing.
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 320, allowIps: [], imageId: img })
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    expect(r.body.provisionMode).toBe('boot')
    vm = r.body.id
    const pid = Number(fs.readFileSync(path.join(mgr.storageRoot, 'vms', vm, 'run', 'vmm.pid'), 'utf8'))
    const args = qemuCmdline(pid)
    expect(args).not.toContain('-initrd')
    expect(args[args.indexOf('-append') + 1]).toContain('root=/dev/vda ro rootfstype=ext4')
    const mounts = await mgr.exec(vm, 'id -u; cat /proc/cmdline; awk \'$2 == "/" { print $3 }\' /proc/mounts; ls /rds 2>&1 >/dev/null')
    const [uid, cmdline, rootFs, rdsDenied] = mounts.stdout.split('\n')
    expect(uid).toBe('1000')
    expect(cmdline).toContain('init=/sbin/rds-init')
    expect(rootFs).toBe('overlay')
    // The image root stays mounted under /rds (shutdown needs it); uid 1000 cannot walk into it.
    expect(rdsDenied).toContain('Permission denied')
  })

  it('runs commands, TypeScript and file transfers', async () => {
    const w = await mgr.exec(vm, 'echo written > /workspace/a.txt && cat /workspace/a.txt && id -un')
    expect(w).toMatchObject({ exitCode: 0, stdout: 'written\nuser\n' })
    const ts = await mgr.request('POST', `/v1/vms/${vm}/run-ts`, { code: 'const n: number = 6; result.set(n * 7)' })
    expect(ts.body.exitCode, ts.body.stderr).toBe(0)
    expect(ts.body.result).toBe(42)
    const up = await mgr.request('POST', `/v1/vms/${vm}/files/upload?dest=/workspace/up`, new Uint8Array(tarGz({ 'b.txt': 'beta' })), { 'content-type': 'application/gzip' })
    expect(up.status, JSON.stringify(up.body)).toBe(204)
    const down = await mgr.request('GET', `/v1/vms/${vm}/files/download?path=/workspace/up`)
    expect(down.status).toBe(200)
    expect(execFileSync('tar', ['-xzOf', '-', '--wildcards', '*b.txt'], { input: down.body }).toString()).toBe('beta')
  })

  it('gets an image seed, and a create of the template shape resumes from it', async () => {
    const seeded = await mgr.waitFor('the seed', async () => {
      const i = (await mgr.request('GET', '/v1/images')).body.find((x: { id: string }) => x.id === img)
      if (i.seedStatus === 'failed') throw new Error(`seed failed: ${i.seedError}`)
      return i.seedStatus === 'ready' ? i : undefined
    })
    expect(seeded.seedSnapshotId).toMatch(/^snap-/)
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], imageId: img })
    expect(r.status, JSON.stringify(r.body)).toBe(201)
    expect(r.body.provisionMode).toBe('snapshot')
    expect((await mgr.exec(r.body.id, 'id -u')).stdout).toBe('1000\n')
    expect((await mgr.request('DELETE', `/v1/vms/${r.body.id}`)).status).toBe(204)
  })

  it('snapshots and resumes a clone from it', async () => {
    const s = await mgr.request('POST', `/v1/vms/${vm}/snapshots`)
    expect(s.status, JSON.stringify(s.body)).toBe(201)
    const c = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 320, allowIps: [], snapshotId: s.body.id })
    expect(c.status, JSON.stringify(c.body)).toBe(201)
    expect(c.body.provisionMode).toBe('snapshot')
    expect((await mgr.exec(c.body.id, 'cat /workspace/a.txt')).stdout).toBe('written\n')
    expect((await mgr.request('DELETE', `/v1/vms/${c.body.id}`)).status).toBe(204)
    expect((await mgr.request('DELETE', `/v1/snapshots/${s.body.id}`)).status).toBe(204)
  })

  it('stops with a clean overlay disk, starts again with /workspace kept, and delete leaves nothing', async () => {
    const state = () => execFileSync('dumpe2fs', ['-h', path.join(mgr.storageRoot, 'vms', vm, 'overlay.ext4')], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).toString()
    // Mounted read-write (no journal), the disk says so until it is unmounted or remounted read-only.
    expect(state()).toMatch(/^Filesystem state:\s+not clean$/m)
    expect((await mgr.request('POST', `/v1/vms/${vm}/stop`)).status).toBe(204)
    // rds-init remounted the overlay disk read-only from the image root before power-off.
    expect(state()).toMatch(/^Filesystem state:\s+clean$/m)
    expect((await mgr.request('POST', `/v1/vms/${vm}/start`)).status).toBe(204)
    expect((await mgr.exec(vm, 'cat /workspace/a.txt')).stdout).toBe('written\n')
    expect((await mgr.request('DELETE', `/v1/vms/${vm}`)).status).toBe(204)
    expect((await mgr.request('GET', `/v1/vms/${vm}`)).status).toBe(404)
    expect(fs.existsSync(path.join(mgr.storageRoot, 'vms', vm))).toBe(false)
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual([])
  })
})

describe('an image of kernel + rootfs whose kernel needs modules', () => {
  it('is still refused with 400 image_needs_initrd, naming the drivers, before anything boots', async () => {
    const debian = await newImage('debian-kernel', path.join(imageDir, 'vmlinux'))
    const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [], imageId: debian })
    expect(r.status).toBe(400)
    expect(r.body.code).toBe('image_needs_initrd')
    expect(r.body.missingDrivers).toEqual(expect.arrayContaining(['virtio_blk', 'virtio_mmio', 'overlay']))
    expect(qemuProcessesOf(mgr.storageRoot)).toEqual([])
    const listed = (await mgr.request('GET', '/v1/images')).body.find((x: { id: string }) => x.id === debian)
    expect(listed.seedStatus).toBeNull()
    expect((await mgr.request('DELETE', `/v1/images/${debian}`)).status).toBe(204)
  })
})
