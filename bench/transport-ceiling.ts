/**
 * What the replication transport alone can carry on this machine, for `npm run bench:cluster`: the ceiling any
 * replicated write runs under. A child process serves the transport with a replica that stores nothing, and this
 * process sends it 1 MiB WRITEs, `depth` in flight, over the same mutually authenticated TLS connection a node uses
 * (node/replication). The same bytes are also sent as a plain stream over node:tls between the same two processes:
 * what Node's TLS moves with no framing at all. Both sides report the CPU time they spent per MiB.
 *
 * Run by the bench only; as a child it is started as `node transport-ceiling.js serve` with the credentials on stdin.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  type NodeCredentials,
  ReplicationOp as Op,
  ReplicationClient,
  ReplicationServer,
  replicationTlsOptions as tlsOptions,
} from '../node/index.js';
import { makePki } from '../test/support/replication-fixture.js';

const MiB = 1024 * 1024;
const SELF = fileURLToPath(import.meta.url);

export interface CeilingResult {
  /** MiB per second carried. */
  mibPerSecond: number;
  /** CPU milliseconds per MiB of the sending and the receiving process (all their threads). */
  senderCpuMsPerMiB: number;
  receiverCpuMsPerMiB: number;
}

/** Messages from the child: its ports once listening, then its CPU use when asked. */
type ChildMessage = { repl: number; raw: number } | { cpuSeconds: number };

function cpuSeconds(): number {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1e6;
}

/** The child: a replication server whose every request succeeds and stores nothing, and a plain TLS sink. */
async function serve(credentials: NodeCredentials): Promise<void> {
  const repl = await ReplicationServer.listen({
    credentials,
    handler: { connect: () => ({ serve: async () => ({}), close: async () => undefined }) },
  });
  const raw = createServer({ ...tlsOptions(credentials), requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.on('data', () => undefined);
  });
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
  const rawPort = (raw.address() as { port: number }).port;
  process.on('message', () => process.send?.({ cpuSeconds: cpuSeconds() } satisfies ChildMessage));
  process.send?.({ repl: repl.address().port, raw: rawPort } satisfies ChildMessage);
}

/** Sends 1 MiB WRITEs through the replication client for `seconds`, `depth` in flight; MiB sent. */
async function pumpReplication(client: ReplicationClient, seconds: number, depth: number): Promise<number> {
  const payloads = Array.from({ length: depth }, () => Buffer.alloc(MiB, 0x5a));
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const lane = async (payload: Buffer): Promise<void> => {
    while (performance.now() < until) {
      await client.call({ op: Op.WRITE, handle: 1, epoch: 1, offset: 0, payload });
      done += 1;
    }
  };
  await Promise.all(payloads.map(lane));
  return done;
}

/** Writes 1 MiB buffers to a plain TLS stream for `seconds`, waiting for drain; MiB written. */
async function pumpRaw(socket: TLSSocket, seconds: number): Promise<number> {
  const payload = Buffer.alloc(MiB, 0x5a);
  const until = performance.now() + seconds * 1000;
  let done = 0;
  while (performance.now() < until) {
    done += 1;
    if (!socket.write(payload)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await new Promise<void>((resolve, reject) => socket.end(() => resolve()).once('error', reject));
  return done;
}

/**
 * Measures both ceilings for `seconds` each: the replication transport (1 MiB WRITEs, `depth` in flight) and a
 * plain node:tls stream, between this process and a child.
 */
export async function measureTransportCeiling(
  seconds: number,
  depth = 16,
): Promise<{ replication: CeilingResult; tls: CeilingResult }> {
  // Node a sends, node b (the child) receives.
  const pki = await makePki();
  const child = fork(SELF, ['serve'], { stdio: ['pipe', 'inherit', 'inherit', 'ipc'] });
  child.stdin?.end(JSON.stringify(pki.b));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`the ceiling's server exited with ${code}`))),
  );
  exited.catch(() => undefined);
  const next = (): Promise<ChildMessage> =>
    Promise.race([once(child, 'message').then(([m]) => m as ChildMessage), exited]);
  const childCpu = async (): Promise<number> => {
    const reply = next();
    child.send('cpu');
    const m = await reply;
    if (!('cpuSeconds' in m)) throw new Error('the ceiling server answered out of turn');
    return m.cpuSeconds;
  };
  try {
    const ports = await next();
    if (!('repl' in ports)) throw new Error('the ceiling server answered out of turn');
    const measure = async (run: () => Promise<number>): Promise<CeilingResult> => {
      const [mine, theirs, start] = [cpuSeconds(), await childCpu(), performance.now()];
      const mib = await run();
      const wall = (performance.now() - start) / 1000;
      const [mineAfter, theirsAfter] = [cpuSeconds(), await childCpu()];
      return {
        mibPerSecond: mib / wall,
        senderCpuMsPerMiB: ((mineAfter - mine) * 1000) / mib,
        receiverCpuMsPerMiB: ((theirsAfter - theirs) * 1000) / mib,
      };
    };
    const client = await ReplicationClient.connect({
      credentials: pki.a,
      host: '127.0.0.1',
      port: ports.repl,
      expectedNodeId: 'node-b',
    });
    const replication = await measure(() => pumpReplication(client, seconds, depth));
    await client.close();
    const socket = connect({ ...tlsOptions(pki.a), host: '127.0.0.1', port: ports.raw });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const tls = await measure(() => pumpRaw(socket, seconds));
    return { replication, tls };
  } finally {
    child.kill();
  }
}

if (process.argv[2] === 'serve' && process.argv[1] === SELF) {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const part of process.stdin) text += part;
  await serve(JSON.parse(text) as NodeCredentials);
}
