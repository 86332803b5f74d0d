// The manager's side of the agent protocol without a VM: every reply is checked against its route
// in the protocol table before it is used, an agent of another protocol version is refused at the
// first answer of its session (a boot fails at once, with a sentence), and every agent fault maps
// to one API error. A scripted agent on a real socket stands in for hostile or outdated guests.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pino from 'pino'
import { AGENT_PROTOCOL_VERSION } from '@rds/protocol'
import { AgentClient } from '../../src/runtime/agent/client.ts'
import { AgentProtocolMismatchError, AgentRefusedError, AgentReplyInvalidError, AgentUnavailableError } from '../../src/runtime/agent/faults.ts'
import { acceptReply } from '../../src/runtime/agent/reply-check.ts'
import { createPaths } from '../../src/runtime/storage/paths.ts'
import type { VmHandle, VmmDriver } from '../../src/runtime/vmm/driver.ts'
import { agentFault } from '../../src/services/agent-fault.ts'
import { createSupervisor } from '../../src/runtime/supervisor/supervisor.ts'
import { VmmError } from '../../src/runtime/vmm/vmm-error.ts'
import { ApiError } from '../../src/errors.ts'
import { answer, identity, scriptedAgent, type ScriptedChannel } from '../harness/scripted-agent.ts'

/** Marks what a hostile agent sent, so a test can tell that it did not travel on. */
const HOSTILE = 'hostile-payload-7f3a'
const execResult = { exitCode: 0, stdout: 'hi\n', stderr: '', timedOut: false, stdoutTruncated: false, stderrTruncated: false, durationMs: 3 }
const initBody = { unixTimeMs: Date.now(), entropy: '' }

describe('a reply is checked against its route before it is used', () => {
  it('passes a reply of the route schema through, typed', () => {
    expect(acceptReply('exec', 200, execResult)).toEqual(execResult)
    expect(acceptReply('run', 200, { ...execResult, result: [1, { a: null }] }).result).toEqual([1, { a: null }])
    expect(acceptReply('shutdown', 202, undefined)).toBeUndefined()
  })

  it('refuses a body that does not match, naming the route and the place, never the value', () => {
    for (const body of [{ ...execResult, stdout: { [HOSTILE]: 1 } }, { exitCode: HOSTILE }, HOSTILE, [HOSTILE], null, undefined]) {
      const err = (() => {
        try {
          acceptReply('exec', 200, body)
        } catch (e) {
          return e
        }
      })()
      expect(err).toBeInstanceOf(AgentReplyInvalidError)
      expect((err as AgentReplyInvalidError).route).toBe('exec')
      expect((err as Error).message).not.toContain(HOSTILE)
    }
    expect(() => acceptReply('exec', 200, { ...execResult, stdout: 5 })).toThrow(/reply to exec does not match the protocol \(\/stdout: must be string\)/)
  })

  it('refuses a success status the route does not have, and a body where none belongs', () => {
    expect(() => acceptReply('exec', 201, execResult)).toThrow(AgentReplyInvalidError)
    expect(() => acceptReply('exec', 302, execResult)).toThrow(AgentReplyInvalidError)
    expect(() => acceptReply('shutdown', 202, { [HOSTILE]: true })).toThrow(AgentReplyInvalidError)
  })

  it('turns an error status with an AgentError body into the agent refusal, and any other error body into an invalid reply', () => {
    const refused = (() => {
      try {
        acceptReply('exec', 400, { code: 'path_not_allowed', message: 'cwd is outside /workspace' })
      } catch (e) {
        return e as AgentRefusedError
      }
    })()
    expect(refused).toBeInstanceOf(AgentRefusedError)
    expect([refused!.status, refused!.code, refused!.agentMessage]).toEqual([400, 'path_not_allowed', 'cwd is outside /workspace'])
    // A code of the agent's choosing never reaches the API.
    expect(() => acceptReply('exec', 400, { code: 'unauthorized', message: HOSTILE })).toThrow(AgentReplyInvalidError)
    expect(() => acceptReply('exec', 500, 'Internal Server Error')).toThrow(AgentReplyInvalidError)
  })

  it('checks the stated protocol version of init and health first', () => {
    expect(acceptReply('init', 200, identity())).toEqual(identity())
    expect(() => acceptReply('init', 200, identity(AGENT_PROTOCOL_VERSION + 1))).toThrow(AgentProtocolMismatchError)
    expect(() => acceptReply('health', 200, { status: 'ok', ...identity(1), uptimeMs: 5 })).toThrow(`the guest agent speaks protocol 1 but this manager speaks protocol ${AGENT_PROTOCOL_VERSION}`)
    // Agents of protocol 1 answered init with an empty 204.
    expect(() => acceptReply('init', 204, undefined)).toThrow(/states no protocol version/)
    expect(() => acceptReply('init', 200, identity(HOSTILE))).toThrow(/states an unreadable protocol version/)
  })
})

describe('every agent fault maps to one API error of the VM', () => {
  const map = (err: unknown) => agentFault('vm-1', err) as ApiError

  it('keeps the agent refusal codes and sentences with the statuses of the original', () => {
    const r = (status: number, code: AgentRefusedError['code'], message: string) => map(new AgentRefusedError('exec', status, code, message))
    expect(r(404, 'path_not_found', 'no such file')).toMatchObject({ status: 400, code: 'path_not_found', message: 'no such file' })
    expect(r(400, 'archive_invalid', 'bad')).toMatchObject({ status: 400, code: 'archive_invalid' })
    expect(r(413, 'archive_too_large', 'too many entries')).toMatchObject({ status: 413, code: 'archive_too_large', message: 'too many entries' })
    expect(r(500, 'internal', 'boom')).toMatchObject({ status: 502, code: 'agent_error', message: 'Agent error: boom' })
    expect(r(503, 'busy', 'shutting down')).toMatchObject({ status: 502, code: 'agent_error' })
  })

  it('reports an invalid reply, an unreachable agent and foreign errors each as their own', () => {
    expect(map(new AgentReplyInvalidError('run', '/stdout: must be string'))).toMatchObject({ status: 502, code: 'agent_reply_invalid', message: 'Agent of VM vm-1 answered run with a reply that does not match the protocol (/stdout: must be string)' })
    expect(map(new AgentUnavailableError('gone'))).toMatchObject({ status: 502, code: 'agent_unavailable' })
    expect(map(new AgentProtocolMismatchError(1))).toMatchObject({ status: 502, code: 'agent_unavailable' })
    const other = new Error('not an agent fault')
    expect(agentFault('vm-1', other)).toBe(other)
  })
})

describe('over a channel', () => {
  let current: ScriptedChannel
  let version: unknown = AGENT_PROTOCOL_VERSION
  beforeAll(async () => {
    current = await scriptedAgent((req, stream) => {
      if (req.path === '/init') return answer(stream, 200, identity(version))
      if (req.path === '/exec' && (req.body as { cmd: string }).cmd === 'ok') return answer(stream, 200, execResult)
      if (req.path === '/exec') return answer(stream, 200, { ...execResult, stdout: [HOSTILE] })
      if (req.path.startsWith('/files/download')) return answer(stream, 404, { code: 'path_not_found', message: 'path "x" does not exist' })
      // 200 is not the upload's success (204), whatever the body says.
      if (req.path.startsWith('/files/upload')) return answer(stream, 200, { [HOSTILE]: true })
      answer(stream, 404, { code: 'invalid_request', message: 'no route' })
    })
  })
  afterAll(() => current.close())

  const connect = async () => {
    const c = new AgentClient(current.socketPath, async (call) => void (await call('init', initBody, 5000)))
    await c.waitReady(5000, () => true)
    return c
  }

  it('refuses an invalid reply with the typed error; the session serves the next request', async () => {
    version = AGENT_PROTOCOL_VERSION
    const c = await connect()
    const err = await c.call('exec', { cmd: 'bad' }, 5000).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentReplyInvalidError)
    expect((err as Error).message).toBe('agent reply to exec does not match the protocol (/stdout: must be string)')
    expect((await c.call('exec', { cmd: 'ok' }, 5000)).stdout).toBe('hi\n')
    // Streams keep their path, and their answers are checked too.
    await expect(c.download({ path: 'x' }, 5000)).rejects.toMatchObject({ constructor: AgentRefusedError, code: 'path_not_found', status: 404 })
    await expect(c.upload('upload', { dest: 'd' }, Readable.from([Buffer.from('x')]), 5000)).rejects.toBeInstanceOf(AgentReplyInvalidError)
    c.close()
  })

  it('fails at once, not at the deadline, when the agent speaks another protocol', async () => {
    version = AGENT_PROTOCOL_VERSION - 1
    let sessions = 0
    const c = new AgentClient(current.socketPath, async (call) => {
      sessions++
      await call('init', initBody, 5000)
    })
    const err = await c.waitReady(20_000, () => true).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentProtocolMismatchError)
    // One session, refused: no retrying until the deadline as for an agent not up yet.
    expect(sessions).toBe(1)
    c.close()
  })

  it('a VM whose image has another protocol fails its boot with a sentence saying so', async () => {
    version = AGENT_PROTOCOL_VERSION - 1
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-contract-'))
    try {
      let killed = false
      const handle: VmHandle = {
        pid: 1,
        startTime: '1',
        channels: { control: current.socketPath, bridge: '/nonexistent', console: '/nonexistent' },
        exited: new Promise(() => {}),
        isAlive: () => true,
        pause: async () => {},
        resume: async () => {},
        snapshot: async () => ({ pauseMs: 0, memoryInFile: true, ramBytes: 64 << 20 }),
        kill: async () => void (killed = true),
      }
      const driver: VmmDriver = { describe: () => ({ vmm: 'scripted', accel: 'tcg' }), runFiles: [], bootRamBytes: (memMb: number) => memMb << 20, vmmOverheadMb: () => 0, boot: async () => handle, restore: async () => handle, reattach: async () => undefined, sweep: () => [] }
      const supervisor = createSupervisor({ driver, paths: createPaths(root, root, path.join(root, 'ram')), log: pino({ level: 'silent' }), bootTimeoutMs: 60_000 })
      const vm = { id: 'vm-old', cpu: 1, memMb: 16, files: { kernel: 'k', initrd: 'i', rootfs: 'r' } }
      const err = await supervisor.boot(vm).catch((e: unknown) => e as Error)
      // The mismatch itself, not the boot timeout (60 s) it would otherwise run into.
      expect(err).toBeInstanceOf(VmmError)
      expect((err as VmmError).kind).toBe('start_failed')
      expect((err as Error).cause).toBeInstanceOf(AgentProtocolMismatchError)
      expect((err as Error).message).toBe(
        `the guest agent speaks protocol ${AGENT_PROTOCOL_VERSION - 1} but this manager speaks protocol ${AGENT_PROTOCOL_VERSION}: the guest image was built for another version of run-dat-sheesh; rebuild it (npm run image) or upload a matching one`,
      )
      expect(killed).toBe(true)
      expect(supervisor.get(vm.id)).toBeUndefined()
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
