import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { inCliWords, ROUTE_COMMANDS } from './api-words.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every non-test .ts file under `dir`. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      out.push(join(entry.parentPath, entry.name));
    }
  }
  return out;
}

describe('API messages in CLI words', () => {
  it('replaces the route hints of API errors with the commands that do the same', () => {
    expect(inCliWords('no volume or snapshot "x"; list them with GET /v1/volumes')).toBe(
      'no volume or snapshot "x"; list them with `ferry volume list`',
    );
    expect(inCliWords('no backup or restore task t; list them with POST /v1/cloudbackups/status')).toBe(
      'no backup or restore task t; list them with `ferry cloudsnap status`',
    );
    expect(inCliWords('sched_uuid: must be a schedule id as GET /v1/cloudbackups/schedules lists it')).toBe(
      'sched_uuid: must be a schedule id as `ferry cloudsnap schedules list` lists it',
    );
    // A longer route is not mistaken for a shorter one it starts with.
    expect(inCliWords('see GET /v1/volumes/inspect/{volume_id}')).toBe('see GET /v1/volumes/inspect/{volume_id}');
    expect(inCliWords('no route here')).toBe('no route here');
  });

  it('knows every route that an API, node or cloudsnap message tells the user to call to list something', async () => {
    // "list them with GET /v1/...", "... as GET /v1/... lists it": the hints the API's errors give.
    const hint = /(?:list them with|as) ((?:GET|POST) \/v1\/[A-Za-z0-9_/.-]*[A-Za-z0-9_])/g;
    const found = new Set<string>();
    for (const dir of ['api', 'node', 'cloudsnap', 'kms']) {
      for (const file of await sources(dir)) {
        const text = await readFile(file, 'utf8');
        for (const match of text.matchAll(hint)) {
          const line = text.slice(text.lastIndexOf('\n', match.index) + 1, match.index).trim();
          if (!line.startsWith('*') && !line.startsWith('//')) found.add(match[1] as string);
        }
      }
    }
    expect(found.size).toBeGreaterThanOrEqual(5);
    const unknown = [...found].filter((route) => ROUTE_COMMANDS[route] === undefined && route !== 'GET /v1/nodes');
    expect(unknown).toEqual([]);
  });
});
