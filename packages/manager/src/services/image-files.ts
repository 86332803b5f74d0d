// The files an image consists of, by API part name.
export const IMAGE_FILES = { kernel: 'vmlinux', initrd: 'initrd', rootfs: 'rootfs.ext4' } as const
export type ImagePart = keyof typeof IMAGE_FILES
