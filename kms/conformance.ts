/**
 * The conformance suite every KeyProvider passes (the local keyring, and the Vault Transit and AWS KMS providers
 * against their stand-ins). Import it from a test file only: it registers vitest tests.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import type { KeyProvider, WrappedKey } from './types.js';

/** What a provider under test offers the suite. */
export interface ConformanceSubject {
  provider: KeyProvider;
  /** An existing KEK the suite may wrap under and rotate. */
  kek: string;
  /** Adds a new version to `kek` (the provider's own rotate operation). */
  rotate(): Promise<void>;
  /** Releases what setup made. */
  close?(): Promise<void>;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err: unknown) {
    return err;
  }
  throw new Error('expected a rejection');
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await rejection(promise);
  expect(isFerryError(err) ? err.code : err).toBe(code);
}

function tamper(wrapped: WrappedKey): WrappedKey {
  const raw = Buffer.from(wrapped.ciphertext, 'base64');
  const at = raw.length - 1;
  raw[at] = (raw[at] ?? 0) ^ 0x01;
  return { ...wrapped, ciphertext: raw.toString('base64') };
}

/** Registers the conformance tests for the provider `setup` makes (a fresh one per test). */
export function describeKeyProviderConformance(name: string, setup: () => Promise<ConformanceSubject>): void {
  describe(`KeyProvider conformance: ${name}`, () => {
    let subject: ConformanceSubject;
    const context = { repository: 'repo-1', tenant: 'acme' };

    beforeEach(async () => {
      subject = await setup();
    });

    afterEach(async () => {
      await subject.close?.();
    });

    it('wraps and unwraps a secret; the wrapped form names provider, KEK and version', async () => {
      const { provider, kek } = subject;
      const secret = Buffer.from('a secret of some length, not a multiple of 16');
      const wrapped = await provider.wrap(kek, secret, context);
      expect(wrapped.provider).toBe(provider.name);
      expect(wrapped.kek_id).toBe(kek);
      expect(wrapped.kek_version).toBe((await provider.describeKek(kek)).version);
      expect(JSON.parse(JSON.stringify(wrapped))).toEqual(wrapped);
      expect(Buffer.from(wrapped.ciphertext, 'base64').includes(secret)).toBe(false);
      expect(await provider.unwrap(wrapped, context)).toEqual(secret);
    });

    it('context order does not matter, but a different context is DATA_CORRUPTION', async () => {
      const { provider, kek } = subject;
      const wrapped = await provider.wrap(kek, Buffer.from('k'), context);
      expect(await provider.unwrap(wrapped, { tenant: 'acme', repository: 'repo-1' })).toEqual(Buffer.from('k'));
      await expectCode(provider.unwrap(wrapped, { ...context, tenant: 'other' }), 'DATA_CORRUPTION');
      await expectCode(provider.unwrap(wrapped, { repository: 'repo-1' }), 'DATA_CORRUPTION');
      await expectCode(provider.unwrap(wrapped, { ...context, extra: '' }), 'DATA_CORRUPTION');
    });

    it('a tampered ciphertext is DATA_CORRUPTION', async () => {
      const { provider, kek } = subject;
      const wrapped = await provider.wrap(kek, Buffer.alloc(32, 7), context);
      await expectCode(provider.unwrap(tamper(wrapped), context), 'DATA_CORRUPTION');
      const truncated = { ...wrapped, ciphertext: Buffer.from('short').toString('base64') };
      await expectCode(provider.unwrap(truncated, context), 'DATA_CORRUPTION');
    });

    it('generateDataKey gives 32 random bytes whose wrapped form unwraps to the same', async () => {
      const { provider, kek } = subject;
      const a = await provider.generateDataKey(kek, context);
      const b = await provider.generateDataKey(kek, context);
      expect(a.plaintext).toHaveLength(32);
      expect(a.plaintext.equals(b.plaintext)).toBe(false);
      expect(await provider.unwrap(a.wrapped, context)).toEqual(a.plaintext);
    });

    it('after rotation: new wraps and rewrap use the newest version; old versions still unwrap', async () => {
      const { provider, kek } = subject;
      const before = await provider.describeKek(kek);
      const old = await provider.generateDataKey(kek, context);
      await subject.rotate();
      const after = await provider.describeKek(kek);
      expect(after.version).toBeGreaterThan(before.version);
      expect(after.id).toBe(before.id);

      const rewrapped = await provider.rewrap(old.wrapped, context);
      expect(rewrapped.kek_version).toBe(after.version);
      expect(await provider.unwrap(rewrapped, context)).toEqual(old.plaintext);
      expect(await provider.unwrap(old.wrapped, context)).toEqual(old.plaintext);
      expect((await provider.wrap(kek, Buffer.from('x'), context)).kek_version).toBe(after.version);
      await expectCode(provider.rewrap(old.wrapped, { other: 'context' }), 'DATA_CORRUPTION');
    });

    it('an unknown KEK is NOT_FOUND everywhere', async () => {
      const { provider, kek } = subject;
      const unknown = 'no-such-kek-for-conformance';
      await expectCode(provider.describeKek(unknown), 'NOT_FOUND');
      await expectCode(provider.wrap(unknown, Buffer.from('x'), context), 'NOT_FOUND');
      await expectCode(provider.generateDataKey(unknown, context), 'NOT_FOUND');
      const wrapped = await provider.wrap(kek, Buffer.from('x'), context);
      await expectCode(provider.unwrap({ ...wrapped, kek_id: unknown }, context), 'NOT_FOUND');
    });

    it('describeKek names the KEK and its newest version', async () => {
      const { provider, kek } = subject;
      const info = await provider.describeKek(kek);
      expect(info.id).toBe(kek);
      expect(Number.isInteger(info.version) && info.version >= 1).toBe(true);
    });
  });
}
