// Builds (or finds cached) the all-built-in guest kernel the no-initrd tests boot:
// node scripts/build-test-kernel.ts [--force] [--cache-dir DIR]
import { parseArgs } from 'node:util';
import { ensureTestKernel } from '../guest/kernel/build.ts';
import { progressLines } from './progress.ts';
import { missingBuiltinDrivers } from '../packages/manager/src/runtime/vmm/kernel-drivers.ts';

const { values } = parseArgs({
  options: {
    force: { type: 'boolean', default: false },
    'cache-dir': { type: 'string' },
  },
});
const cacheDir = values['cache-dir'] ?? process.env.RDS_CACHE_DIR ?? '/var/cache/run-dat-sheesh';

const show = progressLines();

const t0 = performance.now();
try {
  const k = await ensureTestKernel({ cacheDir, force: values.force, onProgress: show });
  // A kernel that would still need modules is useless here: say so now, not as a test's boot timeout.
  const missing = await missingBuiltinDrivers(k.path);
  if (missing.length) throw new Error(`${k.path} lacks built-in drivers: ${missing.join(', ')}`);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`test kernel (${k.sourceVersion}) ready${k.built ? '' : ' (cached)'} in ${secs}s: ${k.path}`);
} catch (err) {
  console.error(`build-test-kernel: ${(err as Error).message}`);
  process.exitCode = 1;
}
