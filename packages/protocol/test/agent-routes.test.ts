// The agent's API table: every path has one route, the shapes the manager checks replies with are
// the ones the agent answers with, and queries survive the trip from one end to the other.
import { expect, it } from 'vitest'
import { AgentError, AgentPaths, AgentRoutes, decodeQuery, DownloadQuery, encodeQuery, matches, mismatch, NoBody, UploadQuery, type AgentRouteName } from '../src/index.ts'

it('has exactly one route per agent path, each with one method, path and success status', () => {
  const routes = Object.values(AgentRoutes)
  expect(routes.map((r) => r.path).sort()).toEqual(Object.values(AgentPaths).sort())
  expect(new Set(routes.map((r) => `${r.method} ${r.path}`)).size).toBe(routes.length)
  for (const r of routes) expect([200, 202, 204]).toContain(r.status)
  // An answer without a body has no 200: the status says it all.
  for (const name of Object.keys(AgentRoutes) as AgentRouteName[]) {
    const r = AgentRoutes[name]
    if (r.reply === NoBody) expect(r.status, name).not.toBe(200)
  }
})

it('says which replies state the protocol version, and those carry it', () => {
  const stating = (Object.keys(AgentRoutes) as AgentRouteName[]).filter((n) => AgentRoutes[n].statesVersion)
  expect(stating.sort()).toEqual(['health', 'init'])
  expect(matches(AgentRoutes.init.reply, { agentVersion: '0.1.0', protocolVersion: 2 })).toBe(true)
  expect(matches(AgentRoutes.init.reply, {})).toBe(false)
})

it('closes the set of error codes', () => {
  expect(matches(AgentError, { code: 'path_not_found', message: 'x' })).toBe(true)
  expect(mismatch(AgentError, { code: 'vm_not_found', message: 'x' })).toBe('/code: must be equal to one of the allowed values')
  expect(mismatch(AgentError, { code: 'internal' })).toMatch(/^\(body\): must have required properties message/)
})

it('reports a mismatch by place and rule, never by the value, and briefly', () => {
  const hostile = 'x'.repeat(10_000)
  expect(mismatch(AgentRoutes.exec.reply, { [hostile]: 1 })).not.toContain('xxxxxxxxxx')
  const deep = mismatch(AgentRoutes.run.request, { runtime: 'node', env: [hostile.slice(0, 5), 5] })
  expect(deep).toBe('/env/1: must be string')
  expect(mismatch(AgentRoutes.exec.request, { cmd: 'true', env: { [hostile]: 1 } })!.length).toBeLessThanOrEqual(200)
})

it('encodes queries for the agent and decodes them as the schema wants', () => {
  const q = encodeQuery({ dest: '/workspace/a b&c', maxEntries: 10, maxBytes: undefined })
  expect(q).toBe('?dest=%2Fworkspace%2Fa+b%26c&maxEntries=10')
  expect(encodeQuery({})).toBe('')
  const params = new URL(`http://agent${AgentPaths.upload}${q}`).searchParams
  expect(decodeQuery(UploadQuery, params)).toEqual({ dest: '/workspace/a b&c', maxEntries: 10 })
  // Keys the schema does not name are not read; text where an integer belongs stays text for the check.
  const odd = decodeQuery(UploadQuery, new URLSearchParams('dest=d&maxBytes=1e9&extra=1'))
  expect(odd).toEqual({ dest: 'd', maxBytes: '1e9' })
  expect(mismatch(UploadQuery, odd)).toBe('/maxBytes: must be integer')
  expect(decodeQuery(DownloadQuery, new URLSearchParams('path=12'))).toEqual({ path: '12' })
})
