import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{common,node,cloudsnap,kms,api,cli,bench,infra}/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
