// The Python SDK's own pytest suite (clients/python/tests), run against the shared manager with
// real VMs; what pytest prints is shown when it fails.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { expect, it } from 'vitest'
import { sharedManager } from '../harness/shared-manager.ts'

const repo = path.resolve(import.meta.dirname, '../../../..')

it('pytest passes against real VMs', async () => {
  const mgr = await sharedManager()
  // Debian's pytest (python3-pytest, installed by bootstrap.sh --test) on Debian's Python.
  const r = spawnSync('pytest-3', ['-q', '-p', 'no:cacheprovider', 'tests'], {
    cwd: path.join(repo, 'clients/python'),
    encoding: 'utf8',
    // The shared manager's template shape: a resume from its seed.
    env: { ...process.env, RDS_BASE_URL: mgr.baseUrl, RDS_API_KEY: mgr.apiKey, RDS_TEST_MEM_MB: '512', PYTHONDONTWRITEBYTECODE: '1' },
    timeout: 15 * 60_000,
  })
  expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
  expect(r.stdout).toMatch(/\d+ passed/)
})
