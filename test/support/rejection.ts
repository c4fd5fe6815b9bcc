import { FerryError } from '../../common/index.js';

/** The FerryError `promise` rejects with; fails the test when it resolves or rejects with something else. */
export async function rejection(promise: Promise<unknown>): Promise<FerryError> {
  try {
    await promise;
  } catch (err: unknown) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}
