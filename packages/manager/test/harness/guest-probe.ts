// Commands and TCP probes run inside a VM through the manager's API, for the network and
// snapshot suites.
import type { ManagerProcess } from './manager-process.ts'

// TCP connect from inside the VM to each host:port: "open", or the error code. EHOSTUNREACH is
// the host's reject; ETIMEDOUT a silent drop (spoofed packets); ECONNREFUSED would mean the
// packet got through to a closed port.
const PROBE = `
const net = require('node:net');
const out = {};
Promise.all(process.argv.slice(1).map((t) => new Promise((done) => {
  const [host, port] = t.split(':');
  const s = net.connect({ host, port: Number(port) });
  const finish = (r) => { out[t] = r; s.destroy(); done(); };
  s.setTimeout(2500, () => finish('ETIMEDOUT'));
  s.on('connect', () => finish('open'));
  s.on('error', (e) => finish(e.code));
}))).then(() => console.log(JSON.stringify(out)));
`

/**
 * Shell that prints the pid of the guest agent (for guest root). One grep over all command lines
 * (a loop of tr|grep takes seconds under TCG); the bracket keeps this command's own from matching.
 */
export const AGENT_PID_SH = "for f in $(grep -la '/opt/rds/agent/agen[t].js' /proc/[0-9]*/cmdline); do f=${f#/proc/}; echo ${f%/cmdline}; done"

/** Exec as uid 1000, or as guest root through the test-only hook (RDS_TEST_GUEST_ROOT). */
export async function guestExec(mgr: ManagerProcess, vmId: string, cmd: string, asRoot = false): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await mgr.request('POST', `/v1/vms/${vmId}/${asRoot ? 'test-hooks/root-exec' : 'exec'}`, { cmd, timeoutMs: 30_000 })
  if (r.status !== 200) throw new Error(`exec failed: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

export async function guestProbe(mgr: ManagerProcess, vmId: string, targets: string[], asRoot = false): Promise<Record<string, string>> {
  const r = await guestExec(mgr, vmId, `node -e '${PROBE.replace(/'/g, "'\\''")}' ${targets.join(' ')}`, asRoot)
  return JSON.parse(r.stdout)
}
