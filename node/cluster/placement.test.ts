import { describe, expect, it } from 'vitest';
import type { PlacementRequest } from '../engine/cluster-ports.js';
import type { MemberView } from './membership.js';
import { MembershipPlacement, type PlacementNode, placeReplicas } from './placement.js';

const GiB = 2 ** 30;

function node(id: string, labels: Record<string, string> = {}, free = 10, status: PlacementNode['status'] = 'Online') {
  return { id, status, labels, free_bytes: free * GiB };
}

const racks = [
  node('a', { rack: 'r1', zone: 'z1' }, 10),
  node('b', { rack: 'r1', zone: 'z1' }, 50),
  node('c', { rack: 'r2', zone: 'z1' }, 20),
  node('d', { rack: 'r3', zone: 'z2' }, 5),
];
const zones = [node('a', { zone: 'z1' }, 10), node('b', { zone: 'z1' }, 30), node('c', { zone: 'z2' }, 20)];
const plain = [node('a', {}, 10), node('b', {}, 30), node('c', {}, 20)];

const req = (ha_level: number, more: Partial<PlacementRequest> = {}): PlacementRequest => ({
  ha_level,
  size: GiB,
  ...more,
});

describe('placeReplicas chooses', () => {
  it.each([
    { what: 'the node with most free space for ha 1', nodes: plain, request: req(1), want: ['b'] },
    { what: 'different nodes by free space', nodes: plain, request: req(3), want: ['b', 'c', 'a'] },
    { what: 'different racks, the freest node of each', nodes: racks, request: req(3), want: ['b', 'c', 'd'] },
    { what: 'different zones when only zones are labelled', nodes: zones, request: req(2), want: ['b', 'c'] },
    { what: 'within the racks asked for', nodes: racks, request: req(2, { racks: ['r1', 'r3'] }), want: ['b', 'd'] },
    {
      what: 'within the zones asked for (spread by rack)',
      nodes: racks,
      request: req(2, { zones: ['z1'] }),
      want: ['b', 'c'],
    },
    { what: 'explicit nodes first', nodes: racks, request: req(2, { nodes: ['a', 'b'] }), want: ['a', 'b'] },
    { what: 'explicit nodes, then spread', nodes: racks, request: req(2, { nodes: ['d'] }), want: ['d', 'b'] },
    {
      what: 'a new replica away from the racks that hold one',
      nodes: racks,
      request: req(2, { exclude: ['b'] }),
      want: ['c'],
    },
    { what: 'nothing when the replicas are there', nodes: racks, request: req(2, { exclude: ['a', 'c'] }), want: [] },
    {
      what: 'past Offline and Maintenance nodes',
      nodes: [node('a', {}, 90, 'Offline'), node('b', {}, 80, 'Maintenance'), node('c', {}, 1), node('d', {}, 2)],
      request: req(2),
      want: ['d', 'c'],
    },
    {
      what: 'by id when free space ties',
      nodes: [node('z', {}, 1), node('y', {}, 1), node('x', {}, 1)],
      request: req(2),
      want: ['x', 'y'],
    },
  ])('$what', ({ nodes, request, want }) => {
    expect(placeReplicas(nodes, request)).toEqual(want);
  });
});

describe('placeReplicas refuses with FAILED_PRECONDITION', () => {
  it.each([
    {
      what: 'more racks than the cluster has',
      nodes: racks.slice(0, 3),
      request: req(3),
      message: 'ha_level 3 needs 3 different racks: the cluster has 3 Online nodes labelled rack there (r1, r2)',
    },
    {
      what: 'more zones than the cluster has',
      nodes: zones,
      request: req(3),
      message: 'ha_level 3 needs 3 different zones: the cluster has 3 Online nodes labelled zone there (z1, z2)',
    },
    {
      what: 'more nodes than are Online',
      nodes: [...plain, node('d', {}, 1, 'Offline')],
      request: req(4),
      message: 'ha_level 4 needs 4 Online nodes: the cluster has 3 (a, b, c) (not Online: d Offline)',
    },
    {
      what: 'an explicit node that does not exist',
      nodes: plain,
      request: req(1, { nodes: ['q'] }),
      message: 'replica_set.nodes: the cluster has no node "q" (its nodes: a, b, c)',
    },
    {
      what: 'an explicit node in maintenance',
      nodes: [node('a'), node('b', {}, 1, 'Maintenance')],
      request: req(1, { nodes: ['b'] }),
      message: 'replica_set.nodes: node "b" is Maintenance; replicas go to Online nodes (a)',
    },
    {
      what: 'more explicit nodes than replicas',
      nodes: plain,
      request: req(1, { nodes: ['a', 'b'] }),
      message: 'replica_set.nodes names 2 nodes that hold no replica, but ha_level 1 needs 1 more',
    },
    {
      what: 'racks restricted below the level',
      nodes: racks,
      request: req(2, { racks: ['r1'] }),
      message:
        'ha_level 2 needs 2 different racks within racks r1: the cluster has 2 Online nodes labelled rack there (r1)',
    },
    {
      what: 'a new replica when every other rack holds one',
      nodes: racks,
      request: req(3, { exclude: ['a', 'c'], racks: ['r1', 'r2'] }),
      message:
        'needs 1 different rack more (besides a, c) within racks r1, r2: the cluster has 1 Online node labelled rack there (r1), and racks r1, r2 already hold a replica',
    },
  ])('$what', ({ nodes, request, message }) => {
    let thrown: unknown;
    try {
      placeReplicas(nodes, request);
    } catch (err: unknown) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((thrown as Error).message).toContain(message);
  });
});

it('MembershipPlacement places over the members and their capacity', async () => {
  const member = (id: string, status: MemberView['status'], rack: string, free: number): MemberView => ({
    id,
    status,
    hostname: id,
    api_url: `http://${id}:9001`,
    version: '1',
    start_time: '',
    last_seen: '',
    labels: { rack },
    capacity: { size_bytes: 100, free_bytes: free },
  });
  const placement = new MembershipPlacement({
    members: async () => [
      member('a', 'Online', 'r1', 5),
      member('b', 'Online', 'r2', 9),
      member('c', 'Offline', 'r3', 99),
    ],
  });
  expect(await placement.place(req(2))).toEqual(['b', 'a']);
  await expect(placement.place(req(3))).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
});
