// sheesh snapshot <id>, sheesh logs <id>, sheesh image ls|default
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'

export const snapshot: Command = {
  name: 'snapshot',
  usage: 'sheesh snapshot <id>',
  summary: 'Snapshot a VM (memory, device state, disk); prints the snapshot id',
  async run(args, values, client, out) {
    const snap = await (await Sandbox.connect(need(args[0]), client)).snapshot()
    out(values.json ? json(snap) : snap.id)
  },
}

export const logs: Command = {
  name: 'logs',
  usage: 'sheesh logs <id> [--vmm] [--tail N]',
  summary: 'Show the end of a VM\'s console (or VMM) log',
  options: { vmm: { type: 'boolean' }, tail: { type: 'string' } },
  async run(args, values, client, out) {
    const lines = await (await Sandbox.connect(need(args[0]), client)).logs({ type: values.vmm ? 'vmm.log' : 'console.log', tail: values.tail ? Number(values.tail) : 200 })
    out(values.json ? json(lines) : lines.join('\n'))
  },
}

/** The image calls the SDK does not offer (an operator's, not a sandbox user's), straight over HTTP. */
async function api<T>(client: { baseUrl?: string; apiKey?: string }, method: string, path: string): Promise<T> {
  const base = (client.baseUrl ?? 'http://127.0.0.1:3000').replace(/\/+$/, '')
  const res = await fetch(`${base}${path}`, { method, headers: { 'x-api-key': client.apiKey ?? '' } })
  const text = await res.text()
  const body = text ? JSON.parse(text) : undefined
  if (!res.ok) throw Object.assign(new Error(body?.message ?? `HTTP ${res.status}`), { code: body?.code, status: res.status })
  return body as T
}

export const image: Command = {
  name: 'image',
  usage: 'sheesh image <ls|default> [id]',
  summary: 'List images, or make one the default',
  async run(args, values, client, out) {
    const [verb, id] = args
    if (verb === 'ls') {
      const images = await api<Record<string, unknown>[]>(client, 'GET', '/v1/images')
      return out(values.json ? json(images) : table(images.map((i) => ({ ...i, default: i.isDefault ? '*' : '' })), ['id', 'name', 'default', 'seedStatus', 'createdAt']))
    }
    if (verb === 'default') {
      await api(client, 'POST', `/v1/images/${encodeURIComponent(need(id, 'an image id'))}/set-default`)
      return out(values.json ? json({ id, isDefault: true }) : `${id} is the default image`)
    }
    throw new UsageError(`unknown image command ${JSON.stringify(verb ?? '')}`)
  },
}
