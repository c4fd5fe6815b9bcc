/**
 * Crash points for durability tests: when FERRY_FAILPOINTS (a comma-separated list) names a point, the process
 * kills itself with SIGKILL on reaching it, exactly as a power cut of the process would look to the disk.
 */
const armed = new Set((process.env.FERRY_FAILPOINTS ?? '').split(',').filter((s) => s.length > 0));

export function failpoint(name: string): void {
  if (armed.size > 0 && armed.has(name)) {
    process.kill(process.pid, 'SIGKILL');
  }
}
