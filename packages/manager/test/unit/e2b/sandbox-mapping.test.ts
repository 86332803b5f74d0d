// The E2B ↔ ours mapping functions, one by one (the seams the TTL, labels and templates work plugs into).
import { describe, expect, it } from 'vitest'
import {
  E2B_MAX_TIMEOUT_SECONDS,
  e2bStateOf,
  endAtFor,
  envForEnvVars,
  imageIdForTemplate,
  labelFilterForMetadataQuery,
  labelsForMetadata,
  listedSandboxOf,
  matchesLabelFilter,
  onExpireForAutoPause,
  outboundInternetFor,
  statesForQuery,
  ttlSecondsForTimeout,
} from '../../../src/api/e2b/sandbox-mapping.ts'
import type { VmRecord } from '../../../src/services/vms.ts'

describe('create fields', () => {
  it('templateID: base is our default image, anything else an image id', () => {
    expect(imageIdForTemplate('base')).toBeUndefined()
    expect(imageIdForTemplate('img-1')).toBe('img-1')
  })
  it('timeout: seconds, E2B default 15, bounded', () => {
    expect(ttlSecondsForTimeout(undefined)).toBe(15)
    expect(ttlSecondsForTimeout(300)).toBe(300)
    // Our TTL has no zero: a sandbox asked to end now ends in a second.
    expect(ttlSecondsForTimeout(0)).toBe(1)
    expect(() => ttlSecondsForTimeout(-1)).toThrow(/0 or more/)
    expect(() => ttlSecondsForTimeout(E2B_MAX_TIMEOUT_SECONDS + 1)).toThrow(/at most/)
    expect(endAtFor(new Date('2026-01-01T00:00:00.000Z'), 90)).toBe('2026-01-01T00:01:30.000Z')
  })
  it('autoPause → onExpire, allow_internet_access → outboundInternet (off unless asked)', () => {
    expect(onExpireForAutoPause(true)).toBe('pause')
    expect(onExpireForAutoPause(undefined)).toBe('delete')
    expect(outboundInternetFor(undefined)).toBe(false)
    expect(outboundInternetFor(false)).toBe(false)
    expect(outboundInternetFor(true)).toBe(true)
  })
  it('metadata → labels: strings only, bounded', () => {
    expect(labelsForMetadata({ a: 'b' })).toEqual({ a: 'b' })
    expect(labelsForMetadata(undefined)).toEqual({})
    expect(() => labelsForMetadata({ a: 1 })).toThrow(/strings/)
    expect(() => labelsForMetadata({ '': 'x' })).toThrow(/keys/)
    expect(() => labelsForMetadata(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])))).toThrow(/at most/)
  })
  it('envVars: variable names with string values', () => {
    expect(envForEnvVars({ A_1: 'x' })).toEqual({ A_1: 'x' })
    expect(() => envForEnvVars({ '1A': 'x' })).toThrow(/envVars/)
    expect(() => envForEnvVars({ A: 2 })).toThrow(/envVars/)
  })
})

describe('list', () => {
  it('parses the SDK\'s metadata query (pairs encoded, then the whole encoded again)', () => {
    // What Sandbox.list({query: {metadata: {'a b': 'x&y', k: 'v'}}}) sends, once the query string is decoded.
    const encodedPairs = Object.fromEntries(Object.entries({ 'a b': 'x&y', k: 'v' }).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)]))
    const sent = new URLSearchParams(encodedPairs).toString()
    const decodedOnce = new URLSearchParams(`metadata=${encodeURIComponent(sent)}`).get('metadata')!
    expect(labelFilterForMetadataQuery(decodedOnce)).toEqual({ 'a b': 'x&y', k: 'v' })
    expect(labelFilterForMetadataQuery(undefined)).toEqual({})
  })
  it('a filter matches when every pair is there', () => {
    expect(matchesLabelFilter({ a: '1', b: '2' }, { a: '1' })).toBe(true)
    expect(matchesLabelFilter({ a: '1' }, { a: '2' })).toBe(false)
    expect(matchesLabelFilter({}, {})).toBe(true)
  })
  it('states: both by default, a comma list or repeated, nothing else', () => {
    expect(statesForQuery(undefined)).toEqual(['running', 'paused'])
    expect(statesForQuery('running')).toEqual(['running'])
    expect(statesForQuery('running,paused')).toEqual(['running', 'paused'])
    expect(statesForQuery(['paused'])).toEqual(['paused'])
    expect(() => statesForQuery('stopped')).toThrow(/running or paused/)
  })
  it('our states → E2B\'s two', () => {
    expect(e2bStateOf('RUNNING')).toBe('running')
    expect(e2bStateOf('STARTING')).toBe('running')
    expect(e2bStateOf('PAUSED')).toBe('paused')
    expect(e2bStateOf('STOPPED')).toBe('paused')
  })
  it('a listed sandbox has every field E2B requires', () => {
    const vm = { id: 'v1', state: 'RUNNING', cpu: 1, memMb: 512, imageId: 'img', createdAt: '2026-01-01T00:00:00.000Z', startedAt: '2026-01-01T00:00:01.000Z' } as VmRecord
    const withRow = listedSandboxOf({ vm, e2b: { vmId: 'v1', templateId: 'base', metadata: { a: 'b' }, envVars: {}, endAt: '2026-01-01T00:05:00.000Z', autoPause: false } })
    expect(withRow).toMatchObject({ templateID: 'base', sandboxID: 'v1', startedAt: vm.startedAt, endAt: '2026-01-01T00:05:00.000Z', cpuCount: 1, memoryMB: 512, state: 'running', metadata: { a: 'b' } })
    for (const f of ['templateID', 'sandboxID', 'clientID', 'startedAt', 'cpuCount', 'memoryMB', 'diskSizeMB', 'endAt', 'state', 'envdVersion']) expect(withRow).toHaveProperty(f)
    const ours = listedSandboxOf({ vm, e2b: undefined })
    expect(ours).toMatchObject({ templateID: 'img', metadata: {} })
    // A VM's own deadline and labels are what E2B clients see for a VM made through /v1.
    const labelled = listedSandboxOf({ vm: { ...vm, labels: { team: 'red' }, expiresAt: '2026-01-01T01:00:00.000Z' }, e2b: undefined })
    expect(labelled).toMatchObject({ metadata: { team: 'red' }, endAt: '2026-01-01T01:00:00.000Z' })
    // While the VM's clock runs, its deadline wins over what the row last recorded.
    expect(listedSandboxOf({ vm: { ...vm, expiresAt: '2026-01-01T00:09:00.000Z' }, e2b: { vmId: 'v1', templateId: 'base', metadata: {}, envVars: {}, endAt: '2026-01-01T00:05:00.000Z', autoPause: false } }).endAt).toBe('2026-01-01T00:09:00.000Z')
  })
})
