// The files of a VM the bench scripts start through the QEMU driver alone (the "raw" baseline,
// no manager): the image's kernel, initrd and rootfs, and the VM's own disk, sockets and logs in
// its directory. Shape, memory and network are the caller's.
import path from 'node:path'

export function rawVmFiles(imgDir: string, dir: string) {
  return {
    kernel: path.join(imgDir, 'vmlinux'),
    initrd: path.join(imgDir, 'initrd'),
    rootfs: path.join(imgDir, 'rootfs.ext4'),
    overlay: path.join(dir, 'overlay.ext4'),
    controlSocket: path.join(dir, 'c.sock'),
    bridgeSocket: path.join(dir, 'b.sock'),
    workDir: dir,
    consoleSocket: path.join(dir, 'con.sock'),
    vmmLog: path.join(dir, 'vmm.log'),
  }
}
