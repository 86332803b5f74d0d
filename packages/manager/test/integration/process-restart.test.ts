// Background processes belong to the guest agent: a manager restart (graceful or -9) over a live
// VM leaves them running, listed, and their output readable from the replay buffer. Needs a
// manager of its own, since it restarts it.
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ManagerProcess } from '../harness/manager-process.ts'

let mgr: ManagerProcess
let vmId: string

beforeAll(async () => {
  mgr = new ManagerProcess()
  await mgr.start()
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 256, allowIps: [] })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
  vmId = r.body.id
})

afterAll(async () => {
  if (vmId) await mgr.request('DELETE', `/v1/vms/${vmId}`)
  await mgr.cleanup()
})

const outputText = async (pid: number, query = '') => {
  const r = await mgr.fetch(`/v1/vms/${vmId}/processes/${pid}/output${query}`, { headers: { 'x-api-key': mgr.apiKey } })
  expect(r.status).toBe(200)
  const events = (await r.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l))
  return { text: events.filter((e) => e.type === 'stdout').map((e) => e.data).join(''), exit: events.find((e) => e.type === 'exit') }
}

it('processes survive manager restarts and are listed after them, with their output', async () => {
  const start = await mgr.request('POST', `/v1/vms/${vmId}/processes`, { cmd: 'i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.5; done', tag: 'ticker' })
  expect(start.status).toBe(201)
  const pid = start.body.pid
  const exited = await mgr.request('POST', `/v1/vms/${vmId}/processes`, { cmd: 'echo before-restart; exit 9', stdin: true })
  await mgr.waitFor('tick-3', async () => ((await outputText(pid)).text.includes('tick-3') ? true : undefined))

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    await mgr.stop(signal)
    await mgr.start()
    const list = await mgr.waitFor('the VM back', async () => {
      const r = await mgr.request('GET', `/v1/vms/${vmId}/processes`)
      return r.status === 200 ? r.body : undefined
    })
    expect(list).toContainEqual(expect.objectContaining({ pid, tag: 'ticker', state: 'running' }))
    expect(list).toContainEqual(expect.objectContaining({ pid: exited.body.pid, state: 'exited', exitCode: 9 }))
    // Replay from the start: nothing of before the restart is lost, and it is still ticking.
    const before = (await outputText(pid)).text
    expect(before).toMatch(/^tick-1\ntick-2\ntick-3\n/)
    const n = before.match(/tick-(\d+)\n$/)![1]
    await mgr.waitFor(`a tick after ${n}`, async () => ((await outputText(pid)).text.includes(`tick-${Number(n) + 1}\n`) ? true : undefined))
    expect(await outputText(exited.body.pid)).toEqual({ text: 'before-restart\n', exit: expect.objectContaining({ exitCode: 9 }) })
  }
  const del = await mgr.fetch(`/v1/vms/${vmId}/processes/${pid}`, { method: 'DELETE', headers: { 'x-api-key': mgr.apiKey } })
  expect(del.status).toBe(204)
  expect((await outputText(pid, '?follow=true')).exit).toMatchObject({ exitCode: 137 })
})
