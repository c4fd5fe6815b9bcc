/**
 * The one refusal of a process that has no volume engine (the serverless handler): the volume and snapshot routes,
 * and whatever else needs a volume, answer 503 UNAVAILABLE with the message CloudSnap's jobs give there.
 */
import type { MiddlewareHandler } from 'hono';
import { NO_BLOCK_SOURCE_MESSAGE } from '../cloudsnap/index.js';
import { FerryError } from '../common/index.js';
import type { VolumeEngine } from '../node/index.js';

/** The engine, or UNAVAILABLE when this process has none. */
export function requireEngine(engine: VolumeEngine | undefined): VolumeEngine {
  if (engine === undefined) throw new FerryError('UNAVAILABLE', NO_BLOCK_SOURCE_MESSAGE);
  return engine;
}

/** Middleware that answers every request it sees UNAVAILABLE (mounted where the engine's routes would be). */
export function withoutEngine(): MiddlewareHandler {
  return async () => {
    requireEngine(undefined);
  };
}
