// sheesh template ls|get|create|rm|spawn: templates built once into a snapshot, spawned many times.
import fs from 'node:fs'
import { Template } from '@run-dat-sheesh/sdk/source'
import { need, UsageError, type Command } from '../command.ts'
import { json, table } from '../output.ts'

export const template: Command = {
  name: 'template',
  usage: 'sheesh template ls | get <name> | create <name> [--cpu N] [--mem MB] [--setup CMD]… [--files x.tar.gz] [--image ID] [--internet] [--wait] | rm <name> | spawn <name>',
  summary: 'Manage templates (a setup built once into a snapshot) and spawn VMs from them',
  options: { cpu: { type: 'string' }, mem: { type: 'string' }, setup: { type: 'string', multiple: true }, files: { type: 'string' }, image: { type: 'string' }, internet: { type: 'boolean' }, wait: { type: 'boolean' } },
  async run(args, values, client, out) {
    const [verb, name] = args
    if (verb === 'ls') {
      const all = await Template.list(client)
      return out(values.json ? json(all) : table(all.map((t) => ({ ...t, shape: `${t.cpu}/${t.memMb}` })), ['name', 'status', 'shape', 'snapshotId', 'builtAt', 'error']))
    }
    if (verb === 'get') return out(json(await Template.get(need(name, 'a template name'), client)))
    if (verb === 'create') {
      const t = await Template.create(
        {
          name: need(name, 'a template name'),
          cpu: Number(values.cpu ?? 1),
          memMb: Number(values.mem ?? 256),
          setup: (values.setup as string[] | undefined) ?? [],
          ...(values.image ? { imageId: values.image as string } : {}),
          ...(values.internet ? { outboundInternet: true } : {}),
          ...(values.files ? { files: fs.readFileSync(values.files as string) } : {}),
        },
        client,
      )
      const done = values.wait ? await Template.waitUntilBuilt(t.name, client) : t
      return out(values.json ? json(done) : `${done.name}: ${done.status}`)
    }
    if (verb === 'rm') {
      await Template.delete(need(name, 'a template name'), client)
      return out(values.json ? json({ name, deleted: true }) : `${name} deleted`)
    }
    if (verb === 'spawn') {
      const sb = await Template.spawn(need(name, 'a template name'), client)
      return out(values.json ? json(sb.info) : sb.id)
    }
    throw new UsageError(`unknown template command ${JSON.stringify(verb ?? '')}`)
  },
}
