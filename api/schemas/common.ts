/**
 * Field rules shared by every request schema. Messages are short phrases; the validator prefixes the field path.
 */
import { z } from 'zod';

import {
  MAX_HA_LEVEL,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_VOLUME_SIZE,
  MAX_NAME_LENGTH as NAME_MAX_LENGTH,
  SIZE_ALIGNMENT,
} from '../../node/index.js';

export {
  MAX_HA_LEVEL,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_VOLUME_SIZE,
  NAME_MAX_LENGTH,
  SIZE_ALIGNMENT,
};

/** Error text for a wrong type, or `is required` when the field is missing. */
export function typeError(expected: string): { error: (issue: { input?: unknown }) => string } {
  return { error: (issue) => (issue.input === undefined ? 'is required' : `must be ${expected}`) };
}

/** A volume or snapshot name: also an NBD export name, so no `/`, `@`, `..`, spaces or control characters. */
export const nameSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(NAME_MAX_LENGTH, `must be at most ${NAME_MAX_LENGTH} characters`)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    'must start with a letter or digit and hold only letters, digits, ".", "_", "-"',
  )
  .refine((name) => !name.includes('..'), 'must not contain ".."');

/**
 * A byte count: a JSON number or a string of digits (protobuf JSON encodes uint64 as a string). Output is a number.
 */
export const byteCountSchema = z
  .union(
    [z.number(), z.string().regex(/^[0-9]{1,16}$/, 'must be a whole number of bytes')],
    typeError('a number of bytes'),
  )
  .transform((value) => (typeof value === 'string' ? Number(value) : value))
  .pipe(z.number().int('must be a whole number of bytes').nonnegative('must not be negative'));

/** A volume size: a positive multiple of 4096 up to MAX_VOLUME_SIZE. */
export const sizeSchema = byteCountSchema
  .refine((size) => size > 0, 'must be greater than 0')
  .refine((size) => size % SIZE_ALIGNMENT === 0, `must be a multiple of ${SIZE_ALIGNMENT} bytes`)
  .refine((size) => size <= MAX_VOLUME_SIZE, `must be at most ${MAX_VOLUME_SIZE} bytes (64 TiB)`);

/** Number of copies of the data, 1 to MAX_HA_LEVEL; numeric strings are accepted as for sizes. */
export const haLevelSchema = z
  .union([z.number(), z.string().regex(/^[0-9]{1,2}$/, 'must be a whole number')], typeError('a number'))
  .transform((value) => (typeof value === 'string' ? Number(value) : value))
  .pipe(
    z
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(MAX_HA_LEVEL, `must be at most ${MAX_HA_LEVEL}`),
  );

const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;
/** Longest label key (as Kubernetes label keys with a prefix). */
/** Longest label value. */

function labels(allowEmptyValues: boolean) {
  return z
    .record(z.string(), z.string(typeError('a string')), typeError('an object of string values'))
    .superRefine((map, ctx) => {
      const keys = Object.keys(map);
      if (keys.length > MAX_LABELS) ctx.addIssue({ code: 'custom', message: `must hold at most ${MAX_LABELS} labels` });
      for (const key of keys) {
        const value = map[key] ?? '';
        let message: string | undefined;
        if (key.length > MAX_LABEL_KEY_LENGTH || !LABEL_KEY.test(key)) {
          message = `key must be 1-${MAX_LABEL_KEY_LENGTH} letters, digits, ".", "_", "-", "/", starting and ending with a letter or digit`;
        } else if (value.length > MAX_LABEL_VALUE_LENGTH) {
          message = `value must be at most ${MAX_LABEL_VALUE_LENGTH} characters`;
        } else if (/\p{Cc}/u.test(value)) {
          message = 'value must not contain control characters';
        } else if (!allowEmptyValues && value === '') {
          message = 'value must not be empty';
        }
        if (message !== undefined) ctx.addIssue({ code: 'custom', path: [key], message });
      }
    });
}

/** Labels to set: up to 64 pairs, keys like Kubernetes label keys, values 1-1024 characters without control codes. */
export const labelsSchema = labels(false);

/** Label changes for an update: as labelsSchema, but a value of '' removes the label. */
export const labelUpdatesSchema = labels(true);

/**
 * What a path or body may name: a volume or snapshot id, a volume name, or a snapshot as `VOLUME@SNAPSHOT`.
 */
export const resourceRefSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(2 * NAME_MAX_LENGTH + 1, 'is too long')
  .regex(/^[A-Za-z0-9._-]+(@[A-Za-z0-9._-]+)?$/, 'must be an id, a name, or VOLUME@SNAPSHOT')
  .refine((ref) => !ref.includes('..'), 'must not contain ".."');
