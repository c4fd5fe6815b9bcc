import { describe, expect, it } from 'vitest';
import { KeyedScheduler } from './scheduler.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('KeyedScheduler', () => {
  it('runs at most `concurrency` tasks, FIFO, and never two tasks sharing a key', async () => {
    const scheduler = new KeyedScheduler(2);
    const started: string[] = [];
    const gates = new Map<string, ReturnType<typeof deferred>>();
    const task = (name: string, keys: string[]): void => {
      const gate = deferred();
      gates.set(name, gate);
      scheduler.add(keys, async () => {
        started.push(name);
        await gate.promise;
      });
    };
    task('a1', ['a']);
    task('a2', ['a']);
    task('b1', ['b']);
    task('c1', ['c']);
    expect(started).toEqual(['a1', 'b1']);
    expect(scheduler.active).toBe(2);
    gates.get('b1')?.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(['a1', 'b1', 'c1']);
    gates.get('a1')?.resolve();
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(['a1', 'b1', 'c1', 'a2']);
    gates.get('c1')?.resolve();
    gates.get('a2')?.resolve();
    await scheduler.onIdle();
    expect(scheduler.active).toBe(0);
  });

  it('keeps going after a task fails, and queues thousands without trouble', async () => {
    const scheduler = new KeyedScheduler(2);
    let done = 0;
    scheduler.add(['x'], async () => {
      throw new Error('boom');
    });
    for (let i = 0; i < 5000; i++) {
      scheduler.add([`k${i % 7}`], async () => {
        done++;
      });
    }
    await scheduler.onIdle();
    expect(done).toBe(5000);
  });
});
