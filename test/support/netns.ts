/**
 * Network namespaces for fault tests (issue 23, docs/REPLICATION.md section 8): a lab is a bridge in this (root)
 * namespace on a /24 of its own, and each of its hosts is a network namespace joined to the bridge by a veth pair.
 * A host's link can be cut (`ip link set <veth> down`: nothing reaches it or leaves it, its sockets stay open) and
 * healed. Processes run in a host by the `ip netns exec NS` prefix (it execs in place, so the process id is the
 * program's). Processes of the root namespace reach every host at its address, and hosts reach the root namespace at
 * the bridge's address (`hostAddress`). Needs root and iproute2; names carry a random tag so that labs of parallel
 * runs do not meet. `destroy` removes every namespace and link the lab made.
 */
import { randomBytes } from 'node:crypto';
import { ok, run } from './run.js';

/** One network namespace of a lab. */
export interface NetHost {
  /** The namespace's name (for `ip netns exec`). */
  name: string;
  /** Its address on the lab's bridge. */
  address: string;
  /** The command prefix that runs a program in it: `['ip', 'netns', 'exec', name]`. */
  prefix: readonly string[];
  /** Whether its link is cut now. */
  readonly isCut: boolean;
  /** Cuts its link: nothing reaches it or leaves it until `heal`. */
  cut(): Promise<void>;
  /** Restores its link. */
  heal(): Promise<void>;
}

/** A bridge and the namespaces joined to it. */
export interface NetLab {
  /** The bridge's address in the root namespace, which every host reaches. */
  hostAddress: string;
  hosts: NetHost[];
  /** Adds a namespace joined to the bridge. */
  addHost(): Promise<NetHost>;
  /** Removes every namespace and link of the lab; safe to call twice. */
  destroy(): Promise<void>;
}

/** Whether this machine lets us make network namespaces (root, iproute2, a kernel that allows it). */
export async function netnsAvailable(): Promise<boolean> {
  const name = `fprobe${randomBytes(3).toString('hex')}`;
  const added = await run('ip', ['netns', 'add', name]).catch(() => ({ code: -1 }));
  if (added.code !== 0) return false;
  await run('ip', ['netns', 'del', name]);
  return true;
}

/** A /24 no route of this namespace uses yet: 10.(200..249).(0..255). */
async function freeSubnet(): Promise<string> {
  const routes = await ok('ip', ['-4', 'route', 'show']);
  for (let attempt = 0; attempt < 50; attempt++) {
    const bytes = randomBytes(2);
    const subnet = `10.${200 + ((bytes[0] ?? 0) % 50)}.${bytes[1] ?? 0}`;
    if (!routes.includes(`${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 for a network lab');
}

/** Makes a lab: a bridge with an address of a free /24, up. */
export async function createNetLab(): Promise<NetLab> {
  const tag = randomBytes(3).toString('hex');
  const bridge = `fbr${tag}`;
  const subnet = await freeSubnet();
  const hosts: NetHost[] = [];
  const made: { namespaces: string[]; links: string[] } = { namespaces: [], links: [bridge] };
  let destroyed = false;
  await ok('ip', ['link', 'add', bridge, 'type', 'bridge']);
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    // Deleting a namespace deletes its end of each veth pair, and with it the other end.
    for (const ns of made.namespaces) await run('ip', ['netns', 'del', ns]);
    for (const link of made.links) await run('ip', ['link', 'del', link]);
  };
  try {
    await ok('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await ok('ip', ['link', 'set', bridge, 'up']);
  } catch (err: unknown) {
    await destroy();
    throw err;
  }

  const addHost = async (): Promise<NetHost> => {
    const n = hosts.length;
    const name = `fns${tag}-${n}`;
    const outer = `fv${tag}h${n}`;
    const inner = `fv${tag}n${n}`;
    const address = `${subnet}.${10 + n}`;
    await ok('ip', ['netns', 'add', name]);
    made.namespaces.push(name);
    await ok('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    made.links.push(outer);
    await ok('ip', ['link', 'set', inner, 'netns', name]);
    await ok('ip', ['link', 'set', outer, 'master', bridge, 'up']);
    await ok('ip', ['-n', name, 'addr', 'add', `${address}/24`, 'dev', inner]);
    await ok('ip', ['-n', name, 'link', 'set', inner, 'up']);
    await ok('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    let isCut = false;
    const host: NetHost = {
      name,
      address,
      prefix: ['ip', 'netns', 'exec', name],
      get isCut() {
        return isCut;
      },
      cut: async () => {
        await ok('ip', ['link', 'set', outer, 'down']);
        isCut = true;
      },
      heal: async () => {
        await ok('ip', ['link', 'set', outer, 'up']);
        isCut = false;
      },
    };
    hosts.push(host);
    return host;
  };

  return { hostAddress: `${subnet}.1`, hosts, addHost, destroy };
}
