// sheesh vm create|ls|get|rm|start|stop|pause|resume
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'

const COLUMNS = ['id', 'state', 'cpu', 'memMb', 'guestIp', 'provisionMode', 'createdAt']
const DONE = { rm: 'deleted', start: 'started', stop: 'stopped', pause: 'paused', resume: 'resumed' } as const

export const vm: Command = {
  name: 'vm',
  usage: 'sheesh vm <create|ls|get|rm|start|stop|pause|resume> [id] [--cpu N] [--mem MiB] [--allow-ip IP]... [--internet] [--snapshot ID] [--secret KEY=value]...',
  summary: 'Create, list, show, delete and drive VMs',
  options: {
    cpu: { type: 'string' },
    mem: { type: 'string' },
    'allow-ip': { type: 'string', multiple: true },
    internet: { type: 'boolean' },
    snapshot: { type: 'string' },
    secret: { type: 'string', multiple: true },
  },
  async run(args, values, client, out) {
    const [verb, id] = args
    switch (verb) {
      case 'create': {
        const secretEnv = Object.fromEntries((values.secret as string[] | undefined ?? []).map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]))
        const sb = await Sandbox.create({
          ...client,
          cpu: values.cpu ? Number(values.cpu) : 1,
          memMb: values.mem ? Number(values.mem) : 256,
          allowIps: (values['allow-ip'] as string[] | undefined) ?? [],
          ...(values.internet ? { outboundInternet: true } : {}),
          ...(values.snapshot ? { snapshotId: values.snapshot as string } : {}),
          ...(Object.keys(secretEnv).length ? { secretEnv } : {}),
        })
        return out(values.json ? json(sb.info) : sb.id)
      }
      case 'ls': {
        const list = await Sandbox.list(client)
        return out(values.json ? json(list) : table(list as unknown as Record<string, unknown>[], COLUMNS))
      }
      case 'get': {
        const sb = await Sandbox.connect(need(id), client)
        return out(json(sb.info))
      }
      case 'rm':
      case 'start':
      case 'stop':
      case 'pause':
      case 'resume': {
        const sb = await Sandbox.connect(need(id), client)
        await (verb === 'rm' ? sb.delete() : sb[verb]())
        return out(values.json ? json({ id: sb.id, done: verb }) : `${DONE[verb]} ${sb.id}`)
      }
      default:
        throw new UsageError(`unknown vm command ${JSON.stringify(verb ?? '')}`)
    }
  },
}
