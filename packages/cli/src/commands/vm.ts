// sheesh vm create|ls|get|rm|start|stop|pause|resume|url
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'

const COLUMNS = ['id', 'state', 'cpu', 'memMb', 'guestIp', 'provisionMode', 'createdAt']
const DONE = { rm: 'deleted', start: 'started', stop: 'stopped', pause: 'paused', resume: 'resumed' } as const

export const vm: Command = {
  name: 'vm',
  usage: 'sheesh vm <create|ls|get|rm|start|stop|pause|resume|url> [id] [port] [--public|--private] [--cpu N] [--mem MiB] [--allow-ip IP]... [--internet] [--snapshot ID] [--secret KEY=value]...',
  summary: 'Create, list, show, delete and drive VMs',
  options: {
    cpu: { type: 'string' },
    mem: { type: 'string' },
    'allow-ip': { type: 'string', multiple: true },
    internet: { type: 'boolean' },
    snapshot: { type: 'string' },
    secret: { type: 'string', multiple: true },
    public: { type: 'boolean' },
    private: { type: 'boolean' },
  },
  async run(args, values, client, out) {
    const [verb, id, port] = args
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
      case 'url': {
        // A browser url for a port of the VM (preview); --public / --private first changes who may open it.
        const p = Number(port)
        if (!Number.isInteger(p) || p < 1 || p > 65535) throw new UsageError('sheesh vm url <id> <port>: the port is a number from 1 to 65535')
        const sb = await Sandbox.connect(need(id), client)
        if (values.public || values.private) await sb.ports.setPublic(p, Boolean(values.public))
        const u = await sb.ports.url(p)
        return out(values.json ? json(u) : u.url)
      }
      default:
        throw new UsageError(`unknown vm command ${JSON.stringify(verb ?? '')}`)
    }
  },
}
