// Copies of VM disks and memory files. `cp` keeps holes (a 512 MiB RAM file with 130 MB in use
// stays 130 MB) and shares extents where the filesystem can; fs.copyFile writes every zero.
import { run } from '../process/run.ts'

export async function copySparse(from: string, to: string): Promise<void> {
  await run('cp', ['--sparse=always', '--reflink=auto', '--', from, to])
}
