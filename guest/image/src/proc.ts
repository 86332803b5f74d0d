// Running the build's external tools. Failures carry the tail of stderr so a broken
// build says why without re-running by hand.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: Buffer;
  /** Called for each complete line of stdout+stderr (debootstrap progress). */
  onLine?: (line: string) => void;
  /** Redirect stdout to this writable fd instead of capturing it. */
  stdoutFd?: number;
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input ? 'pipe' : 'ignore', opts.stdoutFd ?? 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let errTail = '';
    let partial = '';
    const feed = (chunk: Buffer): void => {
      if (!opts.onLine) return;
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    child.stdout?.on('data', (c: Buffer) => { out.push(c); feed(c); });
    child.stderr!.on('data', (c: Buffer) => { errTail = (errTail + c.toString()).slice(-2000); feed(c); });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out).toString());
      const why = signal ? `signal ${signal}` : `exit status ${code}`;
      reject(new Error(`${cmd} ${args.join(' ')} failed (${why}): ${errTail.trim()}`));
    });
    // A reader may stop early (lz4 stops at the end of its frame); EPIPE is not an error
    // here, the exit status decides.
    child.stdin?.on('error', () => undefined);
    if (opts.input) child.stdin!.end(opts.input);
  });
}

/** Tool -> Debian package that provides it, for an actionable error message. */
const TOOLS: Record<string, string> = {
  debootstrap: 'debootstrap',
  'musl-gcc': 'musl-tools',
  'mkfs.ext4': 'e2fsprogs',
  lz4: 'lz4',
  depmod: 'kmod',
  'dpkg-deb': 'dpkg',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  strip: 'binutils',
  tar: 'tar',
};

function onPath(tool: string): boolean {
  // depmod lives in /usr/sbin, which a non-login root shell may not have on PATH.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((d) => {
    try { accessSync(join(d, tool), constants.X_OK); return true; } catch { return false; }
  });
}

function missingMessage(tools: string[]): string {
  const pkgs = [...new Set(tools.map((t) => TOOLS[t] ?? t))].join(' ');
  return `missing tools: ${tools.join(', ')}; install them with: apt-get install -y ${pkgs}`;
}

export function requireTool(tool: string): void {
  if (!onPath(tool)) throw new Error(missingMessage([tool]));
}

export function checkHost(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('building the guest image needs root (debootstrap, device nodes, file ownership)');
  }
  const missing = Object.keys(TOOLS).filter((t) => !onPath(t));
  if (missing.length) throw new Error(missingMessage(missing));
}

/** PATH with the sbin directories, for tools such as depmod and mkfs.ext4. */
export const toolEnv: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`,
  LC_ALL: 'C',
};
