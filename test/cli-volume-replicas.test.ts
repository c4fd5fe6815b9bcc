/**
 * The CLI face of placement on one real node (`ferry node start`, built CLI): `volume create --repl/--nodes`, the
 * replica set in `volume inspect`, `volume locality`, and `volume ha-update`, which a lone node refuses cleanly.
 * Needs `npm run build` first.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runFerry, runFerryJson, startTestNode, type TestNode } from './support/cli-node.js';

let dataDir: string;
let testNode: TestNode | undefined;
let apiUrl: string;
let nodeId: string;

function ferry(...args: string[]): Promise<CliResult> {
  return runFerry(apiUrl, args);
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-cli-replicas-'));
  testNode = await startTestNode(dataDir);
  apiUrl = testNode.apiUrl;
  nodeId = (await readFile(join(dataDir, 'node-id'), 'utf8')).trim();
});

afterAll(async () => {
  await testNode?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('ferry volume: replicas on one node', () => {
  it('creates with --repl and --nodes, and inspect shows the replica set', async () => {
    const created = await ferry('volume', 'create', 'rv', '--size', '64M', '--repl', '1', '--nodes', nodeId);
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(/^Volume successfully created: \S+\n$/);
    const inspect = await ferry('volume', 'inspect', 'rv');
    expect(inspect.stdout).toMatch(/^HA\s+:\s+1$/m);
    expect(inspect.stdout).toMatch(new RegExp(`^Replica\\s+:\\s+${nodeId}  in-sync$`, 'm'));
    expect(inspect.stdout).not.toMatch(/Attached on/);
    const json = await runFerryJson<{ volume: { replicas: unknown; replica_sets: unknown } }>(apiUrl, [
      'volume',
      'inspect',
      'rv',
    ]);
    expect(json.volume.replicas).toEqual([{ node_id: nodeId, state: 'in-sync' }]);
    expect(json.volume.replica_sets).toEqual([{ nodes: [nodeId] }]);
    const wide = await ferry('-o', 'wide', 'volume', 'list');
    const [header, row] = wide.stdout.trimEnd().split('\n');
    expect(header?.split(/\s+/).slice(-2)).toEqual(['REPLICAS', 'LABELS']);
    expect(row).toMatch(new RegExp(`\\s${nodeId}\\s+-$`));
  });

  it('speaks flags in its errors: --repl out of range, a bad --nodes list', async () => {
    const four = await ferry('volume', 'create', 'r4', '--size', '64M', '--repl', '4');
    expect([four.code, four.stderr]).toEqual([2, 'error: --repl: must be at most 3\n']);
    const bad = await ferry('volume', 'create', 'r5', '--size', '64M', '--nodes', 'not/a-node');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: --nodes: must be a node id/);
    const twice = await ferry('volume', 'create', 'r6', '--size', '64M', '--nodes', 'a,a');
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/"a,a" names a twice/);
    expect((await ferry('volume', 'list')).stdout).not.toMatch(/r4|r5|r6/);
  });

  it('ranks the nodes for a volume (locality): this node holds the replica', async () => {
    await ferry('volume', 'create', 'loc', '--size', '64M');
    const table = await ferry('volume', 'locality', 'loc');
    expect(table.code).toBe(0);
    const [header, row, ...rest] = table.stdout.trimEnd().split('\n');
    expect(header?.split(/\s+/)).toEqual(['NODE', 'HOSTNAME', 'SCORE', 'REASON', 'RACK', 'ZONE']);
    expect(row).toMatch(new RegExp(`^${nodeId}\\s+\\S+\\s+100\\s+replica\\s+-\\s+-$`));
    expect(rest).toEqual([]);
    const json = await runFerryJson<{ nodes: { node_id: string; reason: string }[] }>(apiUrl, [
      'volume',
      'locality',
      'loc',
    ]);
    expect(json.nodes.map((n) => [n.node_id, n.reason])).toEqual([[nodeId, 'replica']]);
    const missing = await ferry('volume', 'locality', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: volume "nope" not found/);
  });

  it('ha-update on a lone node fails cleanly with FAILED_PRECONDITION, leaving the volume as it was', async () => {
    await ferry('volume', 'create', 'ha', '--size', '64M');
    const raise = await ferry('volume', 'ha-update', 'ha', '--repl', '2');
    expect(raise.code).toBe(1);
    expect(raise.stdout).toBe('');
    expect(raise.stderr).toMatch(/^error: volume ha cannot get another replica: this node runs alone/);
    const json = await runFerry(apiUrl, ['--json', 'volume', 'ha-update', 'ha', '--repl', '2', '--node', 'x']);
    expect(json.code).toBe(1);
    const same = await ferry('volume', 'ha-update', 'ha', '--repl', '1');
    expect([same.code, same.stdout]).toEqual([0, 'Volume ha already has ha_level 1\n']);
    const view = await runFerryJson<{ volume: { spec: { ha_level: number } } }>(apiUrl, ['volume', 'inspect', 'ha']);
    expect(view.volume.spec.ha_level).toBe(1);
  });
});
