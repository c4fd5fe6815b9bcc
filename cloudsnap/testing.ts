/**
 * CloudSnap's face for tests, beside index.ts: the one object-store conformance suite every backend passes. It
 * registers vitest tests, so it is not exported from index.ts, which the node and the CLI load (vitest is a
 * development dependency). Import it from test files only.
 */
export { describeObjectStoreConformance } from './store/conformance.js';
