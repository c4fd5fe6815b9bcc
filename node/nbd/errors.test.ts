import { describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { EINVAL, EIO, ENOSPC, EPERM } from './constants.js';
import { errnoFor } from './errors.js';

describe('errnoFor', () => {
  it('answers ENOSPC for a full data directory, whether the engine said so or the file system did', () => {
    expect(errnoFor(new FerryError('RESOURCE_EXHAUSTED', 'the data directory /d is full'))).toBe(ENOSPC);
    expect(errnoFor(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))).toBe(
      ENOSPC,
    );
    expect(errnoFor(Object.assign(new Error('EDQUOT: disk quota exceeded'), { code: 'EDQUOT' }))).toBe(ENOSPC);
  });

  it('keeps the other mappings, and EIO for anything else', () => {
    expect(errnoFor(new FerryError('INVALID_ARGUMENT', 'x'))).toBe(EINVAL);
    expect(errnoFor(new FerryError('PERMISSION_DENIED', 'x'))).toBe(EPERM);
    expect(errnoFor(new FerryError('INTERNAL', 'x'))).toBe(EIO);
    expect(errnoFor(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }))).toBe(EIO);
    expect(errnoFor('boom')).toBe(EIO);
  });
});
