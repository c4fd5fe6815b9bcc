/**
 * The HashiCorp Vault Transit key provider ('vault'): KEKs are Transit keys, which never leave Vault.
 * generateDataKey = `POST transit/datakey/plaintext/:name`, wrap = `POST transit/encrypt/:name`, unwrap =
 * `POST transit/decrypt/:name`, rewrap = `POST transit/rewrap/:name` (the plaintext stays in Vault), describeKek =
 * `GET transit/keys/:name` (its `latest_version`). WrappedKey.ciphertext is Vault's own `vault:vN:...` string and
 * kek_version is its N.
 *
 * The encryption context goes into Transit's `context` parameter: base64 of the canonical JSON of the context (keys
 * sorted, see context.ts). Vault derives a per-context key from it only for keys created with `derived=true`; for
 * other keys it ignores the context, so this provider refuses keys that are not derived (FAILED_PRECONDITION).
 * Create the key with `vault write -f transit/keys/NAME derived=true`.
 *
 * Every operation reads the key first (`GET transit/keys/:name`): that makes a wrong name NOT_FOUND instead of letting
 * encrypt create a new key (Vault upserts on encrypt when the token may create), checks `derived`, and refuses an
 * unwrap of a version below `min_decryption_version` with PERMISSION_DENIED. The token's policy therefore needs
 * `read` on `transit/keys/NAME` and `update` on `transit/{encrypt,decrypt,rewrap}/NAME` and
 * `transit/datakey/plaintext/NAME`.
 *
 * Crypto-shredding in Vault: raising min_decryption_version (and trimming) makes the old versions' data
 * PERMISSION_DENIED; deleting the key leaves nothing to tell a deleted key from a wrong name, so that is NOT_FOUND
 * with a message saying data under a deleted key is unreadable.
 */
import { FerryError } from '../common/index.js';
import {
  canonicalJson,
  checkContext,
  checkKekName,
  checkPlaintext,
  checkWrappedKey,
  wrappedKeyMismatch,
} from './context.js';
import type { DataKey, EncryptionContext, KekInfo, KeyProvider, WrappedKey } from './types.js';
import type { VaultClient } from './vault-client.js';
import { type TransitCall, transitError } from './vault-errors.js';

/** The provider name in every WrappedKey this provider makes. */
export const VAULT_PROVIDER = 'vault';

const CIPHERTEXT = /^vault:v([1-9][0-9]*):[A-Za-z0-9+/]+={0,2}$/;

interface TransitKey {
  latest: number;
  minDecryption: number;
}

type Data = Record<string, unknown>;

function dataOf(body: unknown): Data {
  const data = typeof body === 'object' && body !== null ? (body as Data).data : undefined;
  return typeof data === 'object' && data !== null ? (data as Data) : {};
}

/** Transit's `context` parameter: base64 of the canonical JSON of the context. */
function transitContext(context: EncryptionContext): string {
  return Buffer.from(canonicalJson(checkContext(context)), 'utf8').toString('base64');
}

/** The Vault Transit provider; give it a client from `createVaultClient`. */
export class VaultTransitProvider implements KeyProvider {
  readonly name = VAULT_PROVIDER;

  constructor(private readonly client: VaultClient) {}

  async describeKek(kek: string): Promise<KekInfo> {
    checkKekName(kek);
    return { id: kek, version: (await this.readKey(kek)).latest };
  }

  async generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    checkKekName(kek);
    const params = { context: transitContext(context), bits: 256 };
    await this.readKey(kek);
    const data = await this.post('datakey', `datakey/plaintext/${kek}`, kek, params);
    const plaintext = Buffer.from(typeof data.plaintext === 'string' ? data.plaintext : '', 'base64');
    if (plaintext.length !== 32) {
      throw new FerryError('INTERNAL', `Vault returned a ${plaintext.length}-byte data key for "${kek}", not 32`);
    }
    return { plaintext, wrapped: this.wrappedFrom(kek, data) };
  }

  async wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    checkKekName(kek);
    const params = { plaintext: checkPlaintext(plaintext).toString('base64'), context: transitContext(context) };
    await this.readKey(kek);
    return this.wrappedFrom(kek, await this.post('encrypt', `encrypt/${kek}`, kek, params));
  }

  async unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const w = await this.readable(wrapped);
    const params = { ciphertext: w.ciphertext, context: transitContext(context) };
    const data = await this.post('decrypt', `decrypt/${w.kek_id}`, w.kek_id, params);
    return Buffer.from(typeof data.plaintext === 'string' ? data.plaintext : '', 'base64');
  }

  async rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    const w = await this.readable(wrapped);
    const params = { ciphertext: w.ciphertext, context: transitContext(context) };
    return this.wrappedFrom(w.kek_id, await this.post('rewrap', `rewrap/${w.kek_id}`, w.kek_id, params));
  }

  private call(op: string, kek: string): TransitCall {
    const { endpoint, mount, namespace } = this.client;
    return { kek, op, endpoint, mount, namespace };
  }

  /** Reads the key: NOT_FOUND when missing, FAILED_PRECONDITION when it cannot bind a context. */
  private async readKey(kek: string): Promise<TransitKey> {
    await this.client.session.ensure();
    let data: Data;
    try {
      data = dataOf(await this.client.api.read(`${this.client.mount}/keys/${kek}`));
    } catch (err: unknown) {
      throw transitError(err, this.call('keys', kek));
    }
    if (data.derived !== true || data.supports_encryption === false) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `transit key "${kek}" is not a derived encryption key, so Vault would ignore the encryption context: ` +
          `create one with derived=true (vault write -f ${this.client.mount}/keys/NAME derived=true)`,
      );
    }
    const latest = typeof data.latest_version === 'number' ? data.latest_version : 0;
    const minDecryption = typeof data.min_decryption_version === 'number' ? data.min_decryption_version : 1;
    if (latest < 1) throw new FerryError('INTERNAL', `Vault reported no latest_version for transit key "${kek}"`);
    return { latest, minDecryption };
  }

  /** Checks a wrapped key is ours and well formed, and that Vault can still decrypt its version. */
  private async readable(wrapped: WrappedKey): Promise<WrappedKey> {
    const w = checkWrappedKey(wrapped);
    if (w.provider !== VAULT_PROVIDER) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `this key was wrapped by the "${w.provider}" key provider, not Vault Transit; unwrap it there`,
      );
    }
    checkKekName(w.kek_id, 'wrapped.kek_id');
    const match = CIPHERTEXT.exec(w.ciphertext);
    if (match === null || Number(match[1]) !== w.kek_version) throw wrappedKeyMismatch();
    const key = await this.readKey(w.kek_id);
    if (w.kek_version > key.latest) throw wrappedKeyMismatch();
    if (w.kek_version < key.minDecryption) {
      throw new FerryError(
        'PERMISSION_DENIED',
        `version ${w.kek_version} of transit key "${w.kek_id}" is retired in Vault (min_decryption_version ` +
          `${key.minDecryption}): data wrapped under it is unreadable`,
      );
    }
    return w;
  }

  private async post(op: string, path: string, kek: string, params: Data): Promise<Data> {
    await this.client.session.ensure();
    try {
      return dataOf(await this.client.api.write(`${this.client.mount}/${path}`, params));
    } catch (err: unknown) {
      throw transitError(err, this.call(op, kek));
    }
  }

  private wrappedFrom(kek: string, data: Data): WrappedKey {
    const ciphertext = typeof data.ciphertext === 'string' ? data.ciphertext : '';
    const match = CIPHERTEXT.exec(ciphertext);
    if (match === null) throw new FerryError('INTERNAL', `Vault returned no vault:vN: ciphertext for "${kek}"`);
    return { provider: VAULT_PROVIDER, kek_id: kek, kek_version: Number(match[1]), ciphertext };
  }
}
