/** `ferry status` against a real node: the report, its JSON, and the exit code scripts rely on. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { NodeStatusReport } from '../cli/index.js';
import { runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string;
let node: TestNode | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-status-'));
  node = await startTestNode(dataDir);
});

afterAll(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

it('reports the cluster, the node, readiness, volumes and jobs, and exits 0 when ready', async () => {
  const apiUrl = (node as TestNode).apiUrl;
  await runFerry(apiUrl, ['volume', 'create', 'a', '--size', '1M']);
  await runFerry(apiUrl, ['volume', 'create', 'b', '--size', '1M']);
  const report = await runFerryJson<NodeStatusReport>(apiUrl, ['status']);
  expect(report.ready).toBe(true);
  expect(report.volumes).toBe(2);
  expect(report.jobs).toEqual({});
  expect(report.node.status).toBe('STATUS_OK');
  expect(report.node.api_url).toBe(apiUrl);
  expect(report.cluster.id).not.toBe('');
  const text = await runFerry(apiUrl, ['status']);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/^Ready {4}: yes$/m);
  expect(text.stdout).toMatch(/^Volumes {2}: 2$/m);
  expect(text.stdout).toContain(report.node.id);
});

it('exits 1 with a message when no node answers', async () => {
  const down = await runFerry('http://127.0.0.1:9', ['status']);
  expect(down.code).toBe(1);
  expect(down.stderr).toMatch(/cannot reach the Ferry API/);
});
