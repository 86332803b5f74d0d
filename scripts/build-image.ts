// Builds (or finds cached) the guest image: node scripts/build-image.ts [--force] [--cache-dir DIR]
import { parseArgs } from 'node:util';
import { ensureImage } from '../guest/image/src/index.ts';
import { progressLines } from './progress.ts';

const { values } = parseArgs({
  options: {
    force: { type: 'boolean', default: false },
    'cache-dir': { type: 'string' },
    'agent-entry': { type: 'string' },
  },
});
const cacheDir = values['cache-dir'] ?? process.env.RDS_CACHE_DIR ?? '/var/cache/run-dat-sheesh';

const show = progressLines();

const t0 = performance.now();
try {
  const { dir, manifest, built } = await ensureImage({
    cacheDir,
    force: values.force,
    onProgress: show,
    ...(values['agent-entry'] ? { agentEntry: values['agent-entry'] } : {}),
  });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`image ${manifest.recipe} ready${built ? '' : ' (cached)'} in ${secs}s: ${dir}`);
} catch (err) {
  console.error(`build-image: ${(err as Error).message}`);
  process.exitCode = 1;
}
