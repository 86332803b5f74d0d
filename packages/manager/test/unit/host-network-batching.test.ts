// HostNetwork with its commands stubbed (no namespace, no nft): a VM whose allowDomains answers
// arrive as fast as they can does not hold up another VM's PATCH. The PATCH's ruleset load waits
// for at most the one batch already running at nft, never for a queue of per-answer updates (as
// it did when each answer took a turn on the serial queue). Counts, not durations.
import { setTimeout as sleep } from 'node:timers/promises'
import { beforeEach, expect, it, vi } from 'vitest'

type NftRun = { kind: 'ruleset' | 'add'; input: string }
const nftRuns: NftRun[] = []

vi.mock('../../src/runtime/process/run.ts', () => ({
  run: async (cmd: string, args: string[], opts: { input?: string } = {}) => {
    if (args.includes('-j')) return '[]'
    if (cmd === 'nsenter' && args.includes('nft')) {
      nftRuns.push({ kind: opts.input?.includes('flush ruleset') ? 'ruleset' : 'add', input: opts.input ?? '' })
      // An nft run is not instant: answers pile up meanwhile.
      await sleep(15)
    }
    return ''
  },
}))

const { HostNetwork } = await import('../../src/runtime/network/host-network.ts')
const { createAddressPlan } = await import('../../src/runtime/network/address-plan.ts')
const { compilePolicy } = await import('../../src/runtime/network/egress-policy.ts')

const plan = createAddressPlan('172.16.0.0/24', '169.254.100.0/30')
const listed = (domains: string[]) => compilePolicy([], false, plan, domains)

beforeEach(() => {
  nftRuns.length = 0
})

it("a flood of allowDomains answers delays another VM's PATCH by at most one batch", async () => {
  const hn = new HostNetwork(plan, 'unit', 3000, { excluded: [], limits: { maxConnections: 512, newPerSecond: 100, newBurst: 200 } })
  ;(hn as unknown as { ready: Promise<void> }).ready = Promise.resolve()
  await hn.restore([
    { vmId: 'flooder', address: '172.16.0.2', policy: listed(['*.test']) },
    { vmId: 'other', address: '172.16.0.3', policy: listed(['*.test']) },
  ])
  nftRuns.length = 0

  let stop = false
  let answers = 0
  const waits: Array<Promise<void>> = []
  const flood = (async () => {
    for (let i = 0; !stop; i++) {
      for (let k = 0; k < 20; k++, answers++) waits.push(hn.allowResolved('flooder', [`203.0.113.${answers % 250}`], 60))
      await sleep(1)
    }
  })()
  await sleep(100)
  const before = nftRuns.length
  await hn.update({ vmId: 'other', address: '172.16.0.3', policy: listed(['*.test', 'example.org']) })
  const reload = nftRuns.findIndex((r, i) => i >= before && r.kind === 'ruleset')
  const addsAhead = nftRuns.slice(before, reload).filter((r) => r.kind === 'add').length
  stop = true
  await flood
  await Promise.all(waits)
  const adds = nftRuns.filter((r) => r.kind === 'add')
  console.log(`[batching] ${answers} answers of one VM became ${adds.length} nft transactions; the other VM's PATCH waited for ${addsAhead} of them`)
  expect(reload).toBeGreaterThanOrEqual(before)
  expect(addsAhead).toBeLessThanOrEqual(1)
  expect(adds.length).toBeLessThan(answers / 10)
  // The reload kept what was resolved before it; every address made it into the set.
  const added = new Set(adds.flatMap((r) => [...r.input.matchAll(/add element inet rds resolved-\w+ \{ ([\d.]+) timeout/g)].map((m) => m[1])))
  expect(added.size).toBe(Math.min(answers, 250))
})
