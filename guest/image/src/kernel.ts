// Kernel and initramfs: Debian's cloud kernel, booted as an uncompressed ELF (PVH entry,
// no decompression under TCG), plus a tiny initramfs holding rds-init and the virtio and
// overlay modules that the cloud kernel builds as modules.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { requireTool, run, toolEnv } from './proc.ts';

export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

/** Modules the guest needs; depmod supplies their dependencies (virtio, virtio_ring, ...). */
export const GUEST_MODULES = ['virtio_mmio', 'virtio_blk', 'virtio_console', 'virtio_net', 'virtio_rng', 'overlay'];

function dependsOf(pkg: string): string | undefined {
  const out = execFileSync('apt-cache', ['depends', pkg], { encoding: 'utf8', env: toolEnv });
  return /Depends: (linux-image-\S+)/.exec(out)?.[1];
}

/** The concrete kernel package behind the metapackage, e.g. linux-image-6.1.0-56-cloud-amd64.
 * apt lists are refreshed only when apt does not know the package yet. */
export function resolveKernelPackage(): string {
  requireTool('apt-cache');
  let pkg: string | undefined;
  try { pkg = dependsOf(KERNEL_METAPACKAGE); } catch { /* no lists yet */ }
  if (!pkg) {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env: toolEnv });
    pkg = dependsOf(KERNEL_METAPACKAGE);
  }
  if (!pkg) throw new Error(`apt cannot resolve ${KERNEL_METAPACKAGE}`);
  return pkg;
}

/** Downloads and unpacks the kernel package into dir; returns the kernel version. */
export async function fetchKernel(pkg: string, dir: string): Promise<string> {
  // Sandbox user root: _apt cannot write into our private (0700) temp dir.
  await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', pkg], { cwd: dir, env: toolEnv });
  const deb = readdirSync(dir).find((f) => f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
  const root = join(dir, 'root');
  await run('sh', ['-c', 'mkdir -p "$2" && dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2"', 'sh', join(dir, deb), root], { env: toolEnv });
  const versions = readdirSync(join(root, 'lib/modules'));
  if (versions.length !== 1) throw new Error(`expected one kernel version in ${pkg}, found ${versions.join(', ')}`);
  return versions[0]!;
}

/** bzImage -> vmlinux: the payload is an LZ4 legacy frame; lz4 stops at its end. */
export async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const img = readFileSync(vmlinuz);
  const at = img.indexOf(Buffer.from([0x02, 0x21, 0x4c, 0x18]));
  if (at < 0) throw new Error(`${vmlinuz}: no LZ4 payload found (kernel compression changed?)`);
  const fd = openSync(out, 'w', 0o644);
  try {
    // The bzImage carries trailing data after the frame, which lz4 reports as an error
    // after it has written the whole kernel; the ELF check below is the real test.
    await run('lz4', ['-dc'], { input: img.subarray(at), stdoutFd: fd }).catch(() => undefined);
  } finally {
    closeSync(fd);
  }
  const head = Buffer.alloc(4);
  const rfd = openSync(out, 'r');
  try { readSync(rfd, head, 0, 4, 0); } finally { closeSync(rfd); }
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) throw new Error('decompressed kernel is not an ELF file');
}

/** Module paths (relative to lib/modules/<ver>) in load order: dependencies first. */
export async function moduleLoadOrder(root: string, version: string, wanted: string[]): Promise<string[]> {
  // The package ships no modules.dep; depmod -b writes it into the unpacked tree.
  await run('depmod', ['-b', root, version], { env: toolEnv });
  const base = join(root, 'lib/modules', version);
  const norm = (p: string): string => p.replace(/^.*\//, '').replace(/\.ko(\.\w+)?$/, '').replaceAll('-', '_');
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of readFileSync(join(base, 'modules.dep'), 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    deps.set(m[1]!, m[2]!.split(/\s+/).filter(Boolean));
    byName.set(norm(m[1]!), m[1]!);
  }
  const builtin = new Set(readFileSync(join(base, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(norm));
  const order: string[] = [];
  const visit = (path: string): void => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const name of wanted) {
    const path = byName.get(name);
    if (path) visit(path);
    else if (!builtin.has(name)) throw new Error(`kernel ${version} has no module ${name}`);
  }
  return order;
}

/** One cpio "newc" archive entry; the kernel's initramfs unpacker reads only this format. */
function newcEntry(name: string, mode: number, data: Buffer, ino: number): Buffer {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
  const head = Buffer.from('070701' + fields.map(hex).join('') + name + '\0');
  const pad = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  return Buffer.concat([head, pad(head.length), data, pad(data.length)]);
}

/** Writes initrd (gzip'ed newc) with /init, the modules and /modules.load. */
export async function buildInitrd(opts: { kernelRoot: string; version: string; init: Buffer; out: string }): Promise<string[]> {
  const { kernelRoot, version } = opts;
  const modules = await moduleLoadOrder(kernelRoot, version, GUEST_MODULES);
  const entries: Buffer[] = [];
  let ino = 1;
  const dir = (name: string): void => { entries.push(newcEntry(name, 0o040755, Buffer.alloc(0), ino++)); };
  const file = (name: string, mode: number, data: Buffer): void => { entries.push(newcEntry(name, 0o100000 | mode, data, ino++)); };
  for (const d of ['dev', 'proc', 'sys', 'lower', 'upper', 'newroot']) dir(d);
  file('init', 0o755, opts.init);
  const made = new Set<string>();
  const loadList: string[] = [];
  for (const rel of modules) {
    const target = `lib/modules/${version}/${rel.replace(/\.ko\.\w+$/, '.ko')}`;
    const parts = target.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!made.has(d)) { made.add(d); dir(d); }
    }
    const src = join(kernelRoot, 'lib/modules', version, rel);
    // finit_module could take compressed modules only with in-kernel decompression support.
    let data = readFileSync(src);
    if (rel.endsWith('.xz')) data = execFileSync('xz', ['-dc', src], { maxBuffer: 1 << 30 });
    if (rel.endsWith('.zst')) data = execFileSync('zstd', ['-dc', src], { maxBuffer: 1 << 30 });
    file(target, 0o644, data);
    loadList.push('/' + target);
  }
  file('modules.load', 0o644, Buffer.from(loadList.join('\n') + '\n'));
  entries.push(newcEntry('TRAILER!!!', 0, Buffer.alloc(0), 0));
  writeFileSync(opts.out, gzipSync(Buffer.concat(entries), { level: 1 }));
  return modules.map((m) => m.replace(/^.*\//, '').replace(/\.ko.*$/, ''));
}
