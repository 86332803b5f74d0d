// A guest kernel with every driver built in (no modules, so no initrd needed), compiled from
// Debian's linux-source-6.1 with the Firecracker guest config in guest/kernel. The default
// image does not use it: it exists so the tests can prove that an image of kernel + rootfs,
// the shape the original run-dat-sheesh used, boots. Cached by a hash of its inputs, because a
// cold build costs many minutes on a 2-core host and a cached one nothing. It lives outside
// guest/image/src so that editing it does not change the default image's recipe hash.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildProgress } from '../image/src/index.ts';
import { run, toolEnv } from '../image/src/proc.ts';

const REPO_ROOT = join(import.meta.dirname, '../..');
export const TEST_KERNEL_CONFIG = join(REPO_ROOT, 'guest/kernel/firecracker-x86_64-6.1.config');
const SOURCE_PACKAGE = 'linux-source-6.1';
const SOURCE_TARBALL = `/usr/src/${SOURCE_PACKAGE}.tar.xz`;
/** What `make vmlinux` of this config needs beyond gcc: kconfig's parsers, objtool's libelf,
 * the certs tool's OpenSSL headers, and the tarball's decompressor. */
const BUILD_PACKAGES = [SOURCE_PACKAGE, 'make', 'flex', 'bison', 'bc', 'libelf-dev', 'libssl-dev', 'xz-utils', 'gcc'];
/** Compiler lines ("  CC ...") a full build of this config prints; only used for percent. */
const EXPECTED_CC_LINES = 2250;

export interface TestKernel { path: string; dir: string; built: boolean; sourceVersion: string; seconds?: number }

function installedVersion(pkg: string): string | undefined {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg], { encoding: 'utf8', env: toolEnv, stdio: ['ignore', 'pipe', 'ignore'] });
    const [status, version] = out.split('\t');
    return status?.endsWith(' installed') ? version : undefined;
  } catch {
    return undefined;
  }
}

/** Installs the build's host packages that are missing, as scripts/bootstrap.sh does for the manager's. */
async function ensureBuildPackages(onLine: (l: string) => void): Promise<void> {
  const missing = BUILD_PACKAGES.filter((p) => !installedVersion(p));
  if (!missing.length) return;
  if (process.getuid?.() !== 0) throw new Error(`missing host packages: ${missing.join(' ')} — run as root (or: apt-get install ${missing.join(' ')})`);
  onLine(`installing ${missing.join(' ')}`);
  const env = { ...toolEnv, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { env });
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
}

/** Hash of the config's settings and the exact source package version: a new Debian point
 * release is a new kernel, an edited comment is not (a rebuild costs many minutes). */
export function testKernelHash(sourceVersion: string): string {
  // "# CONFIG_X is not set" is a setting, not a comment, to kconfig.
  const settings = readFileSync(TEST_KERNEL_CONFIG, 'utf8').split('\n').filter((l) => /^(# )?CONFIG_/.test(l)).join('\n');
  return createHash('sha256').update(settings).update(`\0${SOURCE_PACKAGE}=${sourceVersion}\0`).digest('hex').slice(0, 16);
}

/** The cached kernel's path if it is there, without installing or building anything. */
export function cachedTestKernel(cacheDir: string): string | undefined {
  const version = installedVersion(SOURCE_PACKAGE);
  if (!version) return undefined;
  const path = join(cacheDir, 'kernels', testKernelHash(version), 'vmlinux');
  return existsSync(path) ? path : undefined;
}

export async function ensureTestKernel(opts: { cacheDir: string; force?: boolean; onProgress?: (p: BuildProgress) => void }): Promise<TestKernel> {
  const steps = ['packages', 'unpack', 'configure', 'compile', 'install'] as const;
  const weights = [2, 5, 1, 90, 2];
  const progress = (step: (typeof steps)[number], fraction: number, detail?: string): void => {
    const i = steps.indexOf(step);
    const before = weights.slice(0, i).reduce((a, b) => a + b, 0);
    const percent = Math.min(100, Math.floor(before + weights[i]! * Math.min(1, fraction)));
    opts.onProgress?.({ step, index: i + 1, total: steps.length, percent, ...(detail ? { detail } : {}) });
  };

  progress('packages', 0, 'checking');
  await ensureBuildPackages((l) => progress('packages', 0.5, l));
  const sourceVersion = installedVersion(SOURCE_PACKAGE)!;
  const hash = testKernelHash(sourceVersion);
  const kernelsDir = join(opts.cacheDir, 'kernels');
  const dir = join(kernelsDir, hash);
  const path = join(dir, 'vmlinux');
  if (!opts.force && existsSync(path)) return { path, dir, built: false, sourceVersion };

  mkdirSync(kernelsDir, { recursive: true });
  // A build killed by SIGKILL leaves its tree (1.5 GB); the pid in the name tells live from dead.
  for (const name of readdirSync(kernelsDir)) {
    const pid = Number(/^\.build-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try { process.kill(pid, 0); } catch { rmSync(join(kernelsDir, name), { recursive: true, force: true }); }
  }
  const work = mkdtempSync(join(kernelsDir, `.build-${process.pid}-`));
  const t0 = performance.now();
  try {
    progress('unpack', 0, SOURCE_TARBALL);
    await run('tar', ['-xf', SOURCE_TARBALL, '-C', work], { env: toolEnv });
    const src = join(work, SOURCE_PACKAGE);
    copyFileSync(TEST_KERNEL_CONFIG, join(src, '.config'));

    progress('configure', 0, 'make olddefconfig');
    await run('make', ['-C', src, 'olddefconfig'], { env: toolEnv });

    // nice 19: the build shares the host with running VMs and tests; it must not starve them.
    let cc = 0;
    progress('compile', 0, 'make -j2 vmlinux');
    await run('nice', ['-n', '19', 'make', '-C', src, '-j2', 'vmlinux'], {
      env: toolEnv,
      onLine: (line) => {
        if (!/^\s+CC\s/.test(line)) return;
        cc++;
        progress('compile', cc / EXPECTED_CC_LINES, `${cc} files compiled`);
      },
    });

    progress('install', 0, 'vmlinux');
    const out = mkdtempSync(join(kernelsDir, `.build-${process.pid}-out-`));
    chmodSync(out, 0o755);
    copyFileSync(join(src, 'vmlinux'), join(out, 'vmlinux'));
    const seconds = Math.round((performance.now() - t0) / 1000);
    writeFileSync(join(out, 'build.json'), JSON.stringify({ config: 'guest/kernel/firecracker-x86_64-6.1.config', source: `${SOURCE_PACKAGE} ${sourceVersion}`, seconds, compiled: cc, builtAt: new Date().toISOString() }, null, 2) + '\n');
    if (opts.force) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(out, dir);
    } catch (err) {
      // A concurrent build of the same inputs finished first; its kernel is the same.
      rmSync(out, { recursive: true, force: true });
      if (!existsSync(path)) throw err;
    }
    progress('install', 1, 'done');
    return { path, dir, built: true, sourceVersion, seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
