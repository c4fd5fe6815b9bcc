/**
 * Crash points for durability tests: when a point is armed (FERRY_FAILPOINTS, a comma-separated list, or
 * `armFailpoints`), the process kills itself with SIGKILL on reaching it, exactly as a crash would look to the disk.
 */
const armed = new Set((process.env.FERRY_FAILPOINTS ?? '').split(',').filter((s) => s.length > 0));

export function armFailpoints(names: readonly string[]): void {
  for (const n of names) armed.add(n);
}

export function failpoint(name: string): void {
  if (armed.size > 0 && armed.has(name)) {
    process.kill(process.pid, 'SIGKILL');
  }
}
