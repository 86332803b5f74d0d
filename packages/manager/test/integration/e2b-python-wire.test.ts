// The Python `e2b` SDK's wire format (PyPI is out of reach here, so not the package): a stdlib-only
// pytest file (test/e2b-python-wire) makes the requests that SDK makes, from E2B's published
// specs, against the shared manager and a real VM; what pytest prints is shown when it fails.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { expect, it } from 'vitest'
import { sharedManager } from '../harness/shared-manager.ts'

it('the Python SDK\'s requests (control plane, envd Connect JSON unary and server streams, files, code interpreter) work', async () => {
  const mgr = await sharedManager()
  // Debian's pytest (python3-pytest, installed by bootstrap.sh --test) on Debian's Python.
  const r = spawnSync('pytest-3', ['-q', '-p', 'no:cacheprovider', 'test_e2b_wire.py'], {
    cwd: path.join(import.meta.dirname, '../e2b-python-wire'),
    encoding: 'utf8',
    env: { ...process.env, E2B_API_URL: mgr.baseUrl, E2B_API_KEY: mgr.apiKey, PYTHONDONTWRITEBYTECODE: '1' },
    timeout: 10 * 60_000,
  })
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
  expect(r.stdout).toMatch(/\d+ passed/)
}, 15 * 60_000)
