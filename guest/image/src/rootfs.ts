// Root filesystem: a cached debootstrap tree, staged (trimmed, runtimes, agent, user
// added) and packed into an ext4 image without mounting anything (mkfs.ext4 -d).
import { createHash } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, toolEnv } from './proc.ts';

export const SUITE = 'bookworm';
/** What user code may expect to find: a shell and git, plus the everyday tools of agents and
 * scripts (curl, jq, unzip, patch, as the original's image had) and Python with pip and venv
 * (venv brings ensurepip's wheels). */
export const PACKAGES = [
  'bash', 'coreutils', 'git', 'ca-certificates', 'iproute2', 'tar', 'gzip', 'procps',
  'curl', 'jq', 'unzip', 'patch', 'python3', 'python3-pip', 'python3-venv',
];
/** debootstrap prints about this many lines (Retrieving/Validating/Extracting/Unpacking/
 * Configuring per package) for the list above; only used to scale progress. */
const DEBOOTSTRAP_EXPECTED_LINES = 700;

/** The Debian mirror this host's apt already uses (the only one reachable here). */
export function aptMirror(): string {
  for (const [file, re] of [
    ['/etc/apt/sources.list.d/debian.sources', /^URIs:\s*(\S+)/m],
    ['/etc/apt/sources.list', /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m],
  ] as const) {
    try {
      const m = re.exec(readFileSync(file, 'utf8'));
      if (m) return m[1]!;
    } catch { /* try the next file */ }
  }
  throw new Error('cannot find an apt mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list');
}

export function debootstrapKey(): string {
  return createHash('sha256').update(JSON.stringify({ SUITE, variant: 'minbase', PACKAGES })).digest('hex').slice(0, 16);
}

/** Returns the cached tree, running debootstrap (into a temp dir, then rename) if needed. */
export async function ensureDebootstrap(cacheDir: string, onFraction: (f: number, detail: string) => void): Promise<{ dir: string; cached: boolean }> {
  const dir = join(cacheDir, `debootstrap-${debootstrapKey()}`);
  if (existsSync(dir)) return { dir, cached: true };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  let lines = 0;
  try {
    await run('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, SUITE, tmp, aptMirror()], {
      env: toolEnv,
      onLine: (l) => {
        const m = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+)/.exec(l);
        if (!m) return;
        lines++;
        onFraction(Math.min(0.99, lines / DEBOOTSTRAP_EXPECTED_LINES), `${m[1]!.toLowerCase()} ${m[2]!.replace(/\.\.\.$/, '')}`);
      },
    });
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return { dir, cached: false };
}

export interface StageInputs {
  tree: string;
  stage: string;
  node: string;
  /** The npm package directory (node_modules/npm), installed as Node's tarball lays it out. */
  npm: string;
  deno: string;
  agentJs: string;
  fileWorkerJs: string;
  rdsInit: string;
  rdsExec: string;
  rdsPortpipe: string;
}

/** Copies the debootstrap tree and turns it into the guest root. */
export async function stageRootfs(s: StageInputs): Promise<void> {
  await run('cp', ['-a', '--reflink=auto', s.tree, s.stage]);
  const at = (p: string): string => join(s.stage, p);
  const wipe = (p: string): void => rmSync(at(p), { recursive: true, force: true });
  for (const p of ['var/cache/apt', 'var/lib/apt/lists', 'usr/share/doc', 'usr/share/man', 'usr/share/info', 'var/log/bootstrap.log', 'var/cache/debconf/templates.dat-old']) wipe(p);
  mkdirSync(at('var/lib/apt/lists/partial'), { recursive: true });
  mkdirSync(at('var/cache/apt/archives/partial'), { recursive: true });
  // Translations only; the C.UTF-8 locale itself lives in /usr/lib/locale.
  for (const l of existsSync(at('usr/share/locale')) ? readdirSync(at('usr/share/locale')) : []) {
    if (l !== 'locale.alias' && l !== 'C.UTF-8') wipe(`usr/share/locale/${l}`);
  }

  mkdirSync(at('usr/local/bin'), { recursive: true });
  copyFileSync(s.node, at('usr/local/bin/node'));
  chmodSync(at('usr/local/bin/node'), 0o755);
  await stripIfSafe(at('usr/local/bin/node'));
  copyFileSync(s.deno, at('usr/local/bin/deno'));
  chmodSync(at('usr/local/bin/deno'), 0o755);
  await installNpm(s.npm, s.stage);

  // The agent runs as root; uid 1000 must not read (or find secrets in) its code.
  mkdirSync(at('opt/rds/agent'), { recursive: true, mode: 0o700 });
  chmodSync(at('opt/rds/agent'), 0o700);
  copyFileSync(s.agentJs, at('opt/rds/agent/agent.js'));
  chmodSync(at('opt/rds/agent/agent.js'), 0o600);
  // Tells Node the bundle is ESM up front instead of parsing it twice (costly under TCG).
  writeFileSync(at('opt/rds/agent/package.json'), '{"type":"module"}\n', { mode: 0o600 });
  mkdirSync(at('usr/lib/rds'), { recursive: true });
  copyFileSync(s.rdsExec, at('usr/lib/rds/rds-exec'));
  chmodSync(at('usr/lib/rds/rds-exec'), 0o755);
  // Root's alone: it holds the control channel.
  copyFileSync(s.rdsPortpipe, at('usr/lib/rds/rds-portpipe'));
  chmodSync(at('usr/lib/rds/rds-portpipe'), 0o700);
  // Run by the user (the file API's worker): no secrets in it, and it must be readable.
  copyFileSync(s.fileWorkerJs, at('usr/lib/rds/file-worker.mjs'));
  chmodSync(at('usr/lib/rds/file-worker.mjs'), 0o644);
  copyFileSync(s.rdsInit, at('sbin/rds-init'));
  chmodSync(at('sbin/rds-init'), 0o755);
  // Mount points for a boot without initramfs (rds-init then builds the root from here, and
  // the image root stays mounted on oldroot): a read-only root cannot get them at boot.
  // 0700 so uid 1000 cannot walk into the layers under the merged root.
  mkdirSync(at('rds'), { mode: 0o700 });
  chmodSync(at('rds'), 0o700);
  for (const d of ['upper', 'root', 'oldroot']) mkdirSync(at(`rds/${d}`), { mode: 0o755 });

  addUser(s.stage);
  mkdirSync(at('workspace'), { mode: 0o755 });
  writeFileSync(at('etc/hostname'), 'sandbox\n');
  writeFileSync(at('etc/hosts'), '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  rmSync(at('etc/resolv.conf'), { force: true }); // may be a copy of the host's
  writeFileSync(at('etc/resolv.conf'), '');
  // /var/tmp is where temporaries that outlive a program go (FHS); programs expect both to be
  // writable by everyone, and a tree from elsewhere need not have them.
  for (const d of ['tmp', 'var/tmp']) {
    mkdirSync(at(d), { recursive: true });
    chmodSync(at(d), 0o1777);
  }
}

/** npm as in Node's own tarball: lib/node_modules/npm, with npm and npx linked into bin, so
 * npm finds its prefix (/usr/local) from the node binary's location as usual. */
async function installNpm(pkgDir: string, stage: string): Promise<void> {
  const dest = join(stage, 'usr/local/lib/node_modules/npm');
  mkdirSync(join(stage, 'usr/local/lib/node_modules'), { recursive: true });
  await run('cp', ['-a', '--reflink=auto', pkgDir, dest]);
  // The checkout may belong to anyone; in the guest it must be root's, not uid 1000's.
  await run('chown', ['-R', '0:0', dest]);
  for (const [name, cli] of [['npm', 'npm-cli.js'], ['npx', 'npx-cli.js']]) {
    chmodSync(join(dest, 'bin', cli), 0o755);
    symlinkSync(`../lib/node_modules/npm/bin/${cli}`, join(stage, 'usr/local/bin', name));
  }
}

/** `strip` shrinks node by ~15%; keep the stripped copy only if it still runs. */
async function stripIfSafe(bin: string): Promise<void> {
  const tmp = `${bin}.stripped`;
  try {
    await run('strip', ['-o', tmp, bin], { env: toolEnv });
    await run(tmp, ['-e', '0']);
    renameSync(tmp, bin);
  } catch {
    rmSync(tmp, { force: true });
  }
}

function addUser(stage: string): void {
  const at = (p: string): string => join(stage, p);
  if (!/^user:/m.test(readFileSync(at('etc/passwd'), 'utf8'))) {
    const days = Math.floor(Date.now() / 86_400_000);
    appendFileSync(at('etc/passwd'), 'user:x:1000:1000::/home/user:/bin/bash\n');
    appendFileSync(at('etc/group'), 'user:x:1000:\n');
    appendFileSync(at('etc/shadow'), `user:!:${days}:0:99999:7:::\n`);
    if (existsSync(at('etc/gshadow'))) appendFileSync(at('etc/gshadow'), 'user:!::\n');
  }
  const home = at('home/user');
  mkdirSync(home, { recursive: true });
  for (const f of existsSync(at('etc/skel')) ? readdirSync(at('etc/skel')) : []) {
    copyFileSync(join(at('etc/skel'), f), join(home, f));
    chownSync(join(home, f), 1000, 1000);
  }
  chmodSync(home, 0o755);
  chownSync(home, 1000, 1000);
}

/** Packs the stage into ext4 with headroom for ext4 metadata; returns the image size in MiB. */
export async function makeExt4(stage: string, out: string): Promise<number> {
  const kib = Number((await run('du', ['-sk', stage])).split(/\s/)[0]);
  const mib = Math.ceil((kib * 1024 * 1.15 + 64 * 1024 * 1024) / (1024 * 1024));
  await run('mkfs.ext4', ['-q', '-F', '-L', 'rootfs', '-b', '4096', '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', stage, out, `${mib}M`], { env: toolEnv });
  return mib;
}
