import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { toYaml } from './yaml.js';

/** Parses YAML with PyYAML (Debian's python3-yaml, a YAML parser of its own) and returns it as JSON. */
function pyYaml(text: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'],
      (error, stdout, stderr) => (error === null ? resolve(JSON.parse(stdout)) : reject(new Error(stderr))),
    );
    child.stdin?.end(text);
  });
}

const TRICKY = [
  '',
  'plain',
  'yes',
  'No',
  'on',
  'null',
  '~',
  'true',
  '123',
  '0x1f',
  '1e3',
  '.5',
  '-1',
  '- item',
  '-',
  ': x',
  'a: b',
  'a #b',
  '#c',
  'trailing ',
  ' leading',
  'quote"d',
  "it's",
  '[x]',
  '{y}',
  '*ref',
  '&anchor',
  '!tag',
  '@at',
  '%pct',
  '`tick`',
  'line\nbreak',
  'tab\there',
  'unicode ✓ 200 GiB',
  '2026-12-06T14:37:44.273Z',
  'ferry.io/kek=team-a',
];

describe('toYaml', () => {
  it('writes what a YAML parser reads back as the same JSON value', async () => {
    const value = {
      volumes: [
        {
          volume: { id: 'a2c6', locator: { name: 'a', volume_labels: {} }, spec: { size: 1073741824, shared: false } },
          labels: { app: 'pg' },
        },
      ],
      empty_list: [],
      nested: [[1, 2], [], [{ a: null }]],
      strings: TRICKY,
      keys: Object.fromEntries(TRICKY.map((s, i) => [s, i])),
      numbers: [0, -1.5, 1e21, 42],
      flags: [true, false],
      missing: undefined,
    };
    expect(await pyYaml(toYaml(value))).toEqual(JSON.parse(JSON.stringify(value)));
  });

  it('writes block style for people, scalars plain where they can be', () => {
    expect(toYaml({ a: { b: [1, 'x'] }, c: {} })).toBe('a:\n  b:\n  - 1\n  - x\nc: {}\n');
    expect(toYaml([])).toBe('[]\n');
    expect(toYaml('yes')).toBe('"yes"\n');
  });
});
