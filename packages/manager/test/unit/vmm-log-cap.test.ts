// vmm.log is written by QEMU itself (O_APPEND, detached from the manager), so it is capped from
// outside by copy-truncate: the function on its own with a writer that keeps its descriptor, and
// the supervisor's timer on a VM of the fake VMM whose "QEMU" floods the file.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { copyTruncate } from '../../src/runtime/logs/copy-truncate.ts'
import { FakeManager } from '../harness/fake-manager.ts'

const KiB = 1024
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-vmmlog-'))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0)

it('leaves a file under half the budget alone, and a missing file is no error', async () => {
  const file = path.join(dir, 'small.log')
  fs.writeFileSync(file, 'x'.repeat(10 * KiB))
  expect(await copyTruncate(file, 64 * KiB)).toBe(false)
  expect(size(file)).toBe(10 * KiB)
  expect(await copyTruncate(path.join(dir, 'absent.log'), 64 * KiB)).toBe(false)
})

it('keeps the newest half-budget in file.1 and empties the file; an O_APPEND writer goes on at offset 0, with no hole', async () => {
  const file = path.join(dir, 'vmm.log')
  // As QEMU holds it: opened once with O_APPEND, never reopened.
  const fd = fs.openSync(file, 'a')
  for (let i = 0; i < 1000; i++) fs.writeSync(fd, `line ${String(i).padStart(4, '0')} ${'w'.repeat(100)}\n`)
  expect(await copyTruncate(file, 64 * KiB)).toBe(true)
  const kept = fs.readFileSync(`${file}.1`, 'utf8')
  expect(kept.length).toBe(32 * KiB)
  expect(kept.endsWith(`line 0999 ${'w'.repeat(100)}\n`)).toBe(true)
  expect(size(file)).toBe(0)
  fs.writeSync(fd, 'after the cut\n')
  fs.closeSync(fd)
  expect(fs.readFileSync(file, 'utf8')).toBe('after the cut\n')
  // Allocated blocks match the content: the old offset left no sparse region behind.
  expect(fs.statSync(file).blocks * 512).toBeLessThanOrEqual(8 * KiB)
})

it('a flood into a live VM\'s vmm.log stays within VMM_LOG_MAX_BYTES (plus one check\'s worth)', async () => {
  const m = await FakeManager.start({ env: { VMM_LOG_MAX_BYTES: String(64 * KiB) } })
  try {
    const r = await m.api('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
    expect(r.status).toBe(201)
    const file = path.join(m.root, 'vms', r.body.id, 'vmm.log')
    const fd = fs.openSync(file, 'a')
    const chunk = Buffer.from(`qemu-system-x86_64: warning: guest did something odd ${'!'.repeat(60)}\n`.repeat(100))
    let written = 0
    const deadline = Date.now() + 4000
    while (Date.now() < deadline) {
      fs.writeSync(fd, chunk)
      written += chunk.length
      await new Promise((res) => setTimeout(res, 20))
    }
    fs.writeSync(fd, 'newest line\n')
    fs.closeSync(fd)
    await m.waitFor('a cut after the last write', async () => size(file) < 64 * KiB / 2 || undefined)
    const total = size(file) + size(`${file}.1`)
    console.log(`vmm.log flood: ${written} B written, vmm.log ${size(file)} B + vmm.log.1 ${size(`${file}.1`)} B`)
    expect(written).toBeGreaterThan(1024 * KiB)
    expect(total).toBeLessThanOrEqual(64 * KiB)
    // GET /logs reads both files: the newest line is there.
    const logs = await m.api('GET', `/v1/vms/${r.body.id}/logs?type=vmm.log`)
    expect(logs.body.lines.at(-1)).toBe('newest line')
  } finally {
    await m.close()
  }
})
