import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    // Integration files boot real VMs under TCG on 2 cores: run files one at a time, and
    // give boots room. No test asserts on timing; these are only upper bounds against hangs.
    fileParallelism: false,
    testTimeout: 240_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
})
