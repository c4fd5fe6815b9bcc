import { invalidArgument } from '../../common/index.js';
import type { GetOptions } from './types.js';

/**
 * Rules every backend applies to keys, so a repository that works on one store works on all of them: keys are
 * '/'-separated relative paths with no empty, '.' or '..' segments, no backslash, NUL or other control character.
 */
export function checkKey(key: string, field = 'key'): void {
  if (key.length === 0) throw invalidArgument(field, 'must not be empty');
  // Backslashes mean something else on some file systems; control characters cannot be listed in S3's XML.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters rejected
  if (/[\u0000-\u001f\u007f\\]/.test(key)) {
    throw invalidArgument(
      field,
      `must not contain a backslash, NUL or other control character (got ${JSON.stringify(key)})`,
    );
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw invalidArgument(
        field,
        `must be a relative '/'-separated path without empty, '.' or '..' segments (got ${JSON.stringify(key)})`,
      );
    }
  }
}

/** A list prefix: empty, or a key-like string that may end with '/'. */
export function checkPrefix(prefix: string): void {
  if (prefix === '') return;
  checkKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, 'prefix');
}

/** Normalises a store prefix option ('a/b/', '/a/b' -> 'a/b/'); '' when absent. */
export function normalizeStorePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  checkKey(trimmed, 'prefix');
  return `${trimmed}/`;
}

/** Orders keys the way S3 lists them: by their UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Where a body of `length` bytes is read: the start of the caller's `into` when it fits (GetOptions.into), else new. */
export function bodyBuffer(length: number, into: Buffer | undefined): Buffer {
  return into !== undefined && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
}

/** Validates a range and returns it, or undefined for a whole-object read. */
export function checkRange(options: GetOptions | undefined): { offset: number; length: number } | undefined {
  const range = options?.range;
  if (range === undefined) return undefined;
  if (!Number.isSafeInteger(range.offset) || range.offset < 0) {
    throw invalidArgument('range.offset', `must be a non-negative integer (got ${range.offset})`);
  }
  if (!Number.isSafeInteger(range.length) || range.length < 1) {
    throw invalidArgument('range.length', `must be a positive integer (got ${range.length})`);
  }
  return range;
}

/** The INVALID_ARGUMENT of a range that reaches past the end of an object. */
export function rangePastEnd(key: string, range: { offset: number; length: number }, size?: number) {
  const of = size === undefined ? '' : ` of ${size} bytes`;
  return invalidArgument(
    'range',
    `bytes ${range.offset}..${range.offset + range.length} reach past the end of ${key}${of}: read within the object`,
  );
}

/** Page size from list options: default 1000, at least 1, at most 1000 (the S3 and Azure limit). */
export function pageSize(maxKeys: number | undefined): number {
  const n = maxKeys ?? 1000;
  if (!Number.isSafeInteger(n) || n < 1) throw invalidArgument('max_keys', `must be a positive integer (got ${n})`);
  return Math.min(n, 1000);
}
