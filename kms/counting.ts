/**
 * A KeyProvider wrapper that counts the calls made through it, per method: for tests and benchmarks that show how
 * often backups and restores reach the provider (a constant per repository open, never per chunk).
 */
import type { DataKey, EncryptionContext, KekInfo, KeyProvider, WrappedKey } from './types.js';

/** Calls per KeyProvider method. */
export interface KeyProviderCalls {
  generateDataKey: number;
  wrap: number;
  unwrap: number;
  rewrap: number;
  describeKek: number;
}

function zero(): KeyProviderCalls {
  return { generateDataKey: 0, wrap: 0, unwrap: 0, rewrap: 0, describeKek: 0 };
}

/** Passes every call to `inner`, counting it first (failed calls count too). */
export class CountingKeyProvider implements KeyProvider {
  /** Calls so far; `reset` sets them back to zero. */
  calls: KeyProviderCalls = zero();

  constructor(private readonly inner: KeyProvider) {}

  get name(): string {
    return this.inner.name;
  }

  /** Every call so far, all methods together. */
  get total(): number {
    return Object.values(this.calls).reduce((a, b) => a + b, 0);
  }

  reset(): void {
    this.calls = zero();
  }

  generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    this.calls.generateDataKey++;
    return this.inner.generateDataKey(kek, context);
  }

  wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    this.calls.wrap++;
    return this.inner.wrap(kek, plaintext, context);
  }

  unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    this.calls.unwrap++;
    return this.inner.unwrap(wrapped, context);
  }

  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    this.calls.rewrap++;
    return this.inner.rewrap(wrapped, context);
  }

  describeKek(kek: string): Promise<KekInfo> {
    this.calls.describeKek++;
    return this.inner.describeKek(kek);
  }
}
