// sheesh vm create|ls|get|rm|start|stop|pause|resume|extend|url
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'

const COLUMNS = ['id', 'state', 'cpu', 'memMb', 'guestIp', 'provisionMode', 'createdAt', 'expiresAt']

/** `--label k=v` (repeatable) as {k: v}; for `ls`, a bare `k` filters on the key alone. */
function labelsOf(values: Record<string, unknown>, bareAllowed: boolean): Record<string, string | null> {
  const out: Record<string, string | null> = {}
  for (const item of (values.label as string[] | undefined) ?? []) {
    const eq = item.indexOf('=')
    if (eq === -1 && !bareAllowed) throw new UsageError(`--label wants key=value (got ${JSON.stringify(item)})`)
    out[eq === -1 ? item : item.slice(0, eq)] = eq === -1 ? null : item.slice(eq + 1)
  }
  return out
}

function seconds(raw: string | undefined, what: string): number {
  const n = Number(raw)
  if (!raw || !/^\d+$/.test(raw) || n < 1) throw new UsageError(`${what} must be a whole number of seconds (got ${JSON.stringify(raw ?? '')})`)
  return n
}
const DONE = { rm: 'deleted', start: 'started', stop: 'stopped', pause: 'paused', resume: 'resumed' } as const

export const vm: Command = {
  name: 'vm',
  usage: 'sheesh vm <create|ls|get|rm|start|stop|pause|resume|extend|url> [id] [seconds|port] [--public|--private] [--cpu N] [--mem MiB] [--allow-ip IP]... [--internet] [--snapshot ID] [--secret KEY=value]... [--ttl SECONDS] [--on-expire delete|pause] [--label key=value]...',
  summary: 'Create, list, show, delete and drive VMs',
  options: {
    cpu: { type: 'string' },
    mem: { type: 'string' },
    'allow-ip': { type: 'string', multiple: true },
    internet: { type: 'boolean' },
    snapshot: { type: 'string' },
    secret: { type: 'string', multiple: true },
    ttl: { type: 'string' },
    'on-expire': { type: 'string' },
    label: { type: 'string', multiple: true },
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
          ...(values.ttl !== undefined ? { ttlSeconds: seconds(values.ttl as string, '--ttl') } : {}),
          ...(values['on-expire'] !== undefined ? { onExpire: onExpire(values['on-expire'] as string) } : {}),
          ...(values.label ? { labels: labelsOf(values, false) as Record<string, string> } : {}),
        })
        return out(values.json ? json(sb.info) : sb.id)
      }
      case 'ls': {
        const list = await Sandbox.list({ ...client, labels: labelsOf(values, true) })
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
      case 'extend': {
        const sb = await Sandbox.connect(need(id), client)
        const info = await sb.extend(seconds(args[2], 'extend\'s seconds'))
        return out(values.json ? json(info) : `${sb.id} expires at ${info.expiresAt}`)
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

function onExpire(raw: string): 'delete' | 'pause' {
  if (raw !== 'delete' && raw !== 'pause') throw new UsageError(`--on-expire is delete or pause (got ${JSON.stringify(raw)})`)
  return raw
}
