/**
 * `ferry cluster options` and `ferry volume update --resync-bandwidth` against a real `ferry node start`: the
 * replication settings shown with their defaults, changed one at a time, and refused in the flag's words.
 * Needs `npm run build` first.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

const MiB = 1024 * 1024;

let dataDir: string;
let node: TestNode | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-options-'));
  node = await startTestNode(dataDir);
});

afterAll(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const api = (): string => (node as TestNode).apiUrl;

describe('ferry cluster options', () => {
  it('shows the defaults, sets each setting on its own, and refuses a bad duration', async () => {
    const shown = await runFerry(api(), ['cluster', 'options']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('Resync bandwidth : no cap');
    expect(shown.stdout).toContain('Replica timeout  : 10m');
    const set = await runFerryJson<{ options: Record<string, number> }>(api(), [
      'cluster',
      'options',
      '--resync-bandwidth',
      '100M',
    ]);
    expect(set.options).toEqual({ resync_bandwidth: 100 * MiB, replica_timeout_seconds: 600 });
    const timeout = await runFerry(api(), ['cluster', 'options', '--replica-timeout', '1h']);
    expect(timeout.code).toBe(0);
    expect(timeout.stdout).toContain('Resync bandwidth : 100 MiB/s per node');
    expect(timeout.stdout).toContain('Replica timeout  : 1h');
    const bad = await runFerry(api(), ['cluster', 'options', '--replica-timeout', 'soon']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--replica-timeout');
  });

  it("sets a volume's resync bandwidth, and back to the cluster's", async () => {
    expect((await runFerry(api(), ['volume', 'create', 'v', '--size', '16M'])).code).toBe(0);
    const capped = await runFerry(api(), ['volume', 'update', 'v', '--resync-bandwidth', '50M']);
    expect(capped).toMatchObject({ code: 0, stdout: expect.stringContaining('resync bandwidth: 50 MiB/s') });
    const cluster = await runFerry(api(), ['volume', 'update', 'v', '--resync-bandwidth', 'cluster']);
    expect(cluster).toMatchObject({ code: 0, stdout: expect.stringContaining('the cluster-wide cap') });
    const bad = await runFerry(api(), ['volume', 'update', 'v', '--resync-bandwidth', 'fast']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--resync-bandwidth');
  });
});
