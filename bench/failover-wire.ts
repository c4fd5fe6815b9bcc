/**
 * Bytes on the wire into one node's replication connections, read from the kernel: `ss -tin` reports
 * `bytes_received` (TCP payload delivered: frames and TLS records, all of it) for every established socket. The
 * sockets counted are those whose local port is the node's replication port (connections other nodes made to it)
 * and those whose peer port is another node's replication port (connections it made to them; on one machine, give
 * only ports of the other nodes, whose own sockets have them as local port, not peer port). A counter polls them and keeps each connection's
 * highest count, so connections that closed still count what they received until their last poll; `settle` reads
 * until the counts stop moving (call it with the node frozen by SIGSTOP before a kill -9, so a killed connection's
 * last bytes are counted too).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Which sockets to count: by local port (server side) or by peer port (client side). */
export interface WirePorts {
  local: readonly number[];
  peer?: readonly number[];
}

/** bytes_received of each established socket `ports` selects, keyed by `local peer`. */
export async function receivedByConnection(ports: WirePorts): Promise<Map<string, number>> {
  const terms = [...ports.local.map((p) => `sport = :${p}`), ...(ports.peer ?? []).map((p) => `dport = :${p}`)];
  const { stdout } = await run('ss', ['-tinH', 'state', 'established', `( ${terms.join(' or ')} )`]);
  const counts = new Map<string, number>();
  let key: string | undefined;
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      // A socket line: Recv-Q Send-Q Local Peer (no state column with a state filter).
      const cols = line.trim().split(/\s+/);
      key = `${cols[2]} ${cols[3]}`;
      counts.set(key, 0);
      continue;
    }
    const m = /\bbytes_received:(\d+)/.exec(line);
    if (key !== undefined && m !== null) counts.set(key, Number(m[1]));
  }
  return counts;
}

/** A running count of bytes into one port. */
export interface WireCounter {
  /** Bytes received so far, over every connection seen since the counter started. */
  total(): number;
  /** Connections opened since the counter started (seen by a poll). */
  connections(): number;
  /** Polls until two reads `gapMs` apart agree, then returns the total. */
  settle(gapMs?: number): Promise<number>;
  /** Polls once more and stops. */
  stop(): Promise<number>;
}

/**
 * Counts bytes received on the sockets `ports` selects from now on, polling every `intervalMs` (default 20). Bytes
 * that connections open at the start had already received are not counted.
 */
export async function countWire(ports: WirePorts, intervalMs = 20): Promise<WireCounter> {
  const before = await receivedByConnection(ports);
  const seen = new Map<string, number>();
  const poll = async (): Promise<void> => {
    for (const [key, bytes] of await receivedByConnection(ports)) {
      const base = before.get(key) ?? 0;
      seen.set(key, Math.max(seen.get(key) ?? 0, bytes - base));
    }
  };
  let stopped = false;
  let polling = Promise.resolve();
  const timer = setInterval(() => {
    polling = polling.then(poll).catch(() => undefined);
  }, intervalMs);
  const total = (): number => [...seen.values()].reduce((a, b) => a + b, 0);
  const settle = async (gapMs = 100): Promise<number> => {
    await polling;
    await poll();
    for (;;) {
      const last = total();
      await new Promise((r) => setTimeout(r, gapMs));
      await poll();
      if (total() === last) return last;
    }
  };
  return {
    total,
    connections: () => [...seen.keys()].filter((key) => !before.has(key)).length,
    settle,
    stop: async () => {
      if (!stopped) {
        stopped = true;
        clearInterval(timer);
        await polling;
        await poll();
      }
      return total();
    },
  };
}
