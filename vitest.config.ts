import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit`, the in-process files beside the code (npm test runs them two at a time: they start no
 * servers of their own), and `e2e`, the files under test/ that start nodes, etcd, object stores and real clients (one
 * at a time). `vitest run` alone runs both.
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['{common,node,cloudsnap,kms,api,cli,bench,infra}/**/*.test.ts'] },
      },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.test.ts'] } },
    ],
  },
});
