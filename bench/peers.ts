// Peer call latency: a consumer calls a provider export through its proxy (timed inside the
// consumer, so only the bridge and the provider's run are measured), against a plain run-ts of the
// same function in the provider through the API (timed on the host), in the same run. A refused
// call (undeclared export) gives the bridge round trip alone: consumer -> agent -> manager -> back.
// Usage: npm run bench:peers [-- --calls 20]
import { parseArgs } from 'node:util'
import { ManagerProcess } from '../packages/manager/test/harness/manager-process.ts'

const { values: opt } = parseArgs({ options: { calls: { type: 'string', default: '20' } } })
const CALLS = Number(opt.calls)

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!
const line = (label: string, xs: number[]) => `${label.padEnd(44)} p50 ${pct(xs, 50).toFixed(1).padStart(8)} ms   p95 ${pct(xs, 95).toFixed(1).padStart(8)} ms   (n=${xs.length})`

const MODULE = `export function greet(name: string) { return { text: 'hello ' + name, keyLength: (Deno.env.get('API_KEY') ?? '').length } }\n`
const MANIFEST = {
  sdk: { name: 'greeter', description: 'bench' },
  modules: [{ path: 'sdk/greet.ts', exports: [{ name: 'greet', description: 'Says hello', params: [{ name: 'name', description: 'Who', schema: { type: 'string' } }], returns: { description: 'Greeting', schema: { type: 'object' } }, examples: [{ description: 'e', code: 'await greet("a")' }] }] }],
}

async function main() {
  const mgr = new ManagerProcess({ LOG_LEVEL: 'error', VM_SECRET_KEY: 'bench-operator-key' })
  try {
    process.stderr.write('starting manager…\n')
    await mgr.start()
    const create = async (body: Record<string, unknown>) => {
      const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], ...body })
      if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
      return r.body.id as string
    }
    const put = async (id: string, file: string, content: string) => {
      const b64 = Buffer.from(content).toString('base64')
      const r = await mgr.request('POST', `/v1/vms/${id}/exec`, { cmd: `mkdir -p "$(dirname ${file})" && echo ${b64} | base64 -d > ${file}` })
      if (r.body.exitCode !== 0) throw new Error(`write failed: ${JSON.stringify(r.body)}`)
    }
    const runTs = async (id: string, code: string, timeoutMs = 120_000) => {
      const r = await mgr.request('POST', `/v1/vms/${id}/run-ts`, { code, timeoutMs })
      if (r.status !== 200 || r.body.error) throw new Error(`run-ts failed: ${JSON.stringify(r.body)}`)
      return r.body.result
    }

    process.stderr.write('creating provider and consumer…\n')
    const provider = await create({ secretEnv: ['API_KEY=bench-secret-value'] })
    await put(provider, '/workspace/sdk/greet.ts', MODULE)
    await put(provider, '/workspace/.rds-peer/manifest.json', JSON.stringify(MANIFEST))
    const consumer = await create({ peerLinks: [{ alias: 'greeter', vmId: provider }] })

    // Warm both runtimes' caches once, as a user's first call would.
    await runTs(provider, `import { greet } from "file:///workspace/sdk/greet.ts"; result.set(greet("warm"))`)

    const plain: number[] = []
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now()
      await runTs(provider, `import { greet } from "file:///workspace/sdk/greet.ts"; result.set(greet("bench"))`)
      plain.push(performance.now() - t0)
    }

    const inGuest = (await runTs(consumer, `
      import { greet } from "file:///workspace/peers/greeter/proxy/sdk/greet.ts";
      import { invokePeer } from "file:///workspace/peers/.runtime/bridge.mjs";
      const calls = [], refused = [];
      for (let i = 0; i < ${CALLS}; i++) {
        let t0 = performance.now(); await greet("bench"); calls.push(performance.now() - t0);
        // The limiter allows 20 calls/s per link; refused calls count too, so pace them.
        t0 = performance.now();
        try { await invokePeer({ alias: "greeter", modulePath: "/workspace/sdk/greet.ts", exportName: "nope", args: [] }) } catch {}
        refused.push(performance.now() - t0);
      }
      result.set({ calls, refused });`, 120_000)) as { calls: number[]; refused: number[] }

    const endToEnd: number[] = []
    for (let i = 0; i < Math.min(CALLS, 10); i++) {
      const t0 = performance.now()
      await runTs(consumer, `import { greet } from "file:///workspace/peers/greeter/proxy/sdk/greet.ts"; result.set(await greet("bench"))`)
      endToEnd.push(performance.now() - t0)
    }

    console.log(`peer calls, ${CALLS} of each kind, same manager and VMs`)
    console.log(line('plain run-ts in the provider (API, host-timed)', plain))
    console.log(line('peer call via proxy (timed in the consumer)', inGuest.calls))
    console.log(line('refused call: bridge round trip only', inGuest.refused))
    console.log(line('consumer run-ts with one peer call (API)', endToEnd))
    console.log(`peer call overhead over a plain run-ts: p50 ${(pct(inGuest.calls, 50) - pct(plain, 50)).toFixed(1)} ms`)
  } finally {
    await mgr.cleanup()
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
