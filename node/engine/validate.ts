import { FerryError, invalidArgument } from '../../common/index.js';
import {
  MAX_HA_LEVEL,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_NAME_LENGTH,
  MAX_VOLUME_SIZE,
  SIZE_ALIGNMENT,
} from './constants.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const LABEL_KEY_RE = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

/** Volume and snapshot names: 1-128 of [A-Za-z0-9._-], starting with a letter or digit, no "..". */
export function validateName(field: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(field, 'a name is required');
  if (name.length > MAX_NAME_LENGTH) {
    throw invalidArgument(field, `name is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`);
  }
  if (!NAME_RE.test(name) || name.includes('..')) {
    throw invalidArgument(
      field,
      `name ${JSON.stringify(name)} may use only letters, digits, '.', '_' and '-', must start with a letter or digit and must not contain '..'`,
    );
  }
  return name;
}

/** A volume size in bytes: positive, a multiple of 4 KiB, at most 64 TiB. */
export function validateSize(field: string, size: unknown): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size)) {
    throw invalidArgument(field, 'size must be a whole number of bytes');
  }
  if (size <= 0) throw invalidArgument(field, `size must be greater than 0 (got ${size})`);
  if (size % SIZE_ALIGNMENT !== 0) {
    throw invalidArgument(field, `size ${size} is not a multiple of ${SIZE_ALIGNMENT} bytes`);
  }
  if (size > MAX_VOLUME_SIZE) {
    throw invalidArgument(field, `size ${size} is over the maximum of ${MAX_VOLUME_SIZE} bytes (64 TiB)`);
  }
  return size;
}

export function validateHaLevel(field: string, ha: unknown): number {
  if (ha === undefined) return 1;
  if (typeof ha !== 'number' || !Number.isInteger(ha) || ha < 1 || ha > MAX_HA_LEVEL) {
    throw invalidArgument(field, `ha_level must be between 1 and ${MAX_HA_LEVEL}`);
  }
  return ha;
}

/** Labels: up to 64 pairs, keys like Kubernetes label keys (up to 253 characters), values up to 1024 characters. */
export function validateLabels(field: string, labels: unknown, allowEmptyValues = false): Record<string, string> {
  if (labels === undefined) return {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    throw invalidArgument(field, 'labels must be an object of string keys and string values');
  }
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw invalidArgument(field, `at most ${MAX_LABELS} labels`);
  for (const [k, v] of entries) {
    if (k.length > MAX_LABEL_KEY_LENGTH || !LABEL_KEY_RE.test(k))
      throw invalidArgument(`${field}.${k}`, 'invalid label key');
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE_LENGTH || (!allowEmptyValues && v.length === 0)) {
      throw invalidArgument(`${field}.${k}`, 'label values must be non-empty strings of at most 1024 characters');
    }
    if (/[\p{Cc}]/u.test(v)) throw invalidArgument(`${field}.${k}`, 'label values must not contain control characters');
  }
  return { ...(labels as Record<string, string>) };
}

export function precondition(message: string): FerryError {
  return new FerryError('FAILED_PRECONDITION', message);
}
