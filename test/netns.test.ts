/**
 * The network lab of test/support/netns.ts: a program in a namespace is reached from the root namespace and from
 * another namespace; once its link is cut nothing reaches it, once healed it is reached again; destroy leaves no
 * namespace or link behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createNetLab, type NetLab } from './support/netns.js';
import { ok, run } from './support/run.js';

let lab: NetLab;
let server: ChildProcess | undefined;
const PORT = 7007;

beforeAll(async () => {
  lab = await createNetLab();
  await lab.addHost();
  await lab.addHost();
});

afterAll(async () => {
  server?.kill('SIGKILL');
  await lab?.destroy();
});

/** Connects to host:PORT from this namespace; 'ok' once the server's greeting arrived, else why not. */
function reach(host: string, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: PORT });
    const done = (what: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(what);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('data', (d: Buffer) => done(d.toString() === 'hi' ? 'ok' : `got ${d.toString()}`));
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
  });
}

it('a namespace is reached, cut off, and reached again once healed', async () => {
  const [a, b] = lab.hosts;
  if (a === undefined || b === undefined) throw new Error('no hosts');
  const script = `require('net').createServer((s) => s.end('hi')).listen(${PORT}, '${a.address}', () => console.log('up'))`;
  const child = spawn(a.prefix[0] ?? 'ip', [...a.prefix.slice(1), process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  server = child;
  await new Promise((resolve) => child.stdout?.once('data', resolve));

  expect(await reach(a.address)).toBe('ok');
  const fromB = `const s = require('net').connect(${PORT}, '${a.address}'); s.on('data', (d) => { console.log(String(d)); process.exit(0) }); s.on('error', (e) => { console.log(e.code); process.exit(0) }); setTimeout(() => { console.log('timeout'); process.exit(0) }, 1500)`;
  expect((await ok(b.prefix[0] ?? 'ip', [...b.prefix.slice(1), process.execPath, '-e', fromB])).trim()).toBe('hi');

  await a.cut();
  expect(a.isCut).toBe(true);
  expect(await reach(a.address)).not.toBe('ok');
  expect((await ok(b.prefix[0] ?? 'ip', [...b.prefix.slice(1), process.execPath, '-e', fromB])).trim()).not.toBe('hi');

  await a.heal();
  // The bridge port takes a moment to forward again after the link comes up.
  let again = '';
  for (let i = 0; i < 20 && again !== 'ok'; i++) again = await reach(a.address);
  expect(again).toBe('ok');

  const names = lab.hosts.map((h) => h.name);
  child.kill('SIGKILL');
  await lab.destroy();
  const left = await run('ip', ['netns', 'list']);
  for (const name of names) expect(left.stdout).not.toContain(name);
});
