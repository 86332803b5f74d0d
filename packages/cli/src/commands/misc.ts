// sheesh snapshot <id>, sheesh logs <id>
import { Sandbox } from '@run-dat-sheesh/sdk/source'
import { need, type Command } from '../command.ts'
import { json } from '../output.ts'

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
