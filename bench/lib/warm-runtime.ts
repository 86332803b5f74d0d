// Waits until a VM's warm runtime (a Deno or Node the agent started ahead) is up and blocked
// reading its go FIFO, through exec: what a bench does between run calls so each warm call finds
// one ready. The process exists (and its FIFO too) well before it has started: its main thread
// waiting in pipe_read is what says the start is over.
import type { ManagerProcess } from '../../packages/manager/test/harness/manager-process.ts'

export async function warmRuntimePid(mgr: ManagerProcess, vmId: string, runtime: 'deno' | 'node'): Promise<number> {
  const cmd = `for p in $(pgrep -u 1000 -f "^/usr/local/bin/${runtime} "); do [ -e "$(tr '\\0' '\\n' </proc/$p/cmdline | grep 'wrapper.mjs$' | xargs -r dirname)/go.fifo" ] && [ "$(cat /proc/$p/wchan)" = pipe_read ] && echo $p; done; true`
  for (let i = 0; i < 600; i++) {
    const r = await mgr.request('POST', `/v1/vms/${vmId}/exec`, { cmd, timeoutMs: 120_000 })
    const pids = String(r.body.stdout ?? '').split('\n').filter(Boolean).map(Number)
    if (pids.length === 1) return pids[0]!
    await new Promise((res) => setTimeout(res, 200))
  }
  throw new Error(`no warm ${runtime} runtime in ${vmId}`)
}
