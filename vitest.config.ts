import { defineConfig } from 'vitest/config'

// Tests that boot VMs live in these folders and nowhere else; every other test file runs in the
// unit project (`npm run test:unit`), which a tripwire keeps from ever starting QEMU.
const VM_TESTS = ['packages/manager/test/integration/**/*.test.ts', 'packages/manager/test/security/**/*.test.ts']
// The container deployment: builds images and runs the stack with Podman (its VMs run in there).
const DEPLOY_TESTS = ['packages/manager/test/deploy/**/*.test.ts']
const HARNESS = 'packages/manager/test/harness'

export default defineConfig({
  test: {
    // Upper bounds against hangs only: no test asserts on timing.
    testTimeout: 240_000,
    hookTimeout: 300_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
          exclude: [...VM_TESTS, ...DEPLOY_TESTS],
          setupFiles: [`${HARNESS}/no-qemu.ts`],
          // No VM, so the two cores can take a file each; runs before the VM project.
          fileParallelism: true,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'vm',
          include: VM_TESTS,
          setupFiles: [`${HARNESS}/leak-check.ts`],
          // One manager with image seeds on, shared by the files that only need VMs of it.
          globalSetup: [`${HARNESS}/shared-manager-setup.ts`],
          // Real VMs under TCG on 2 cores: one file at a time, with room for boots.
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'deploy',
          include: DEPLOY_TESTS,
          // Image builds (cold: minutes) happen in beforeAll.
          hookTimeout: 1_200_000,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
})
