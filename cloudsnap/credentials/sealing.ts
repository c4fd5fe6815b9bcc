/**
 * Envelope encryption of a credential's secret fields: a fresh data key from the key provider (context
 * `{ purpose: 'credential', credential_id }`), AES-256-GCM over the JSON of the secrets with the credential id as
 * additional data, and the wrapped data key stored beside the ciphertext. The cluster store only ever sees this.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import { canonicalJson, type EncryptionContext, type KeyProvider, type WrappedKey } from '../../kms/index.js';
import type { CredentialSecrets } from './types.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The sealed secrets of a credential, as stored. */
export interface SealedSecrets {
  /** The data key, wrapped by the key provider. */
  wrapped_key: WrappedKey;
  /** base64(nonce | tag | AES-256-GCM ciphertext of the secrets' JSON). */
  ciphertext: string;
}

function contextFor(credentialId: string): EncryptionContext {
  return { purpose: 'credential', credential_id: credentialId };
}

function aad(credentialId: string): Buffer {
  return Buffer.from(canonicalJson({ credential_id: credentialId }), 'utf8');
}

/** Encrypts `secrets` of credential `credentialId` under a new data key from `keys` (KEK `kek`). */
export async function sealSecrets(
  keys: KeyProvider,
  kek: string,
  credentialId: string,
  secrets: CredentialSecrets,
): Promise<SealedSecrets> {
  const dataKey = await keys.generateDataKey(kek, contextFor(credentialId));
  const plaintext = Buffer.from(JSON.stringify(secrets), 'utf8');
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', dataKey.plaintext, nonce);
    cipher.setAAD(aad(credentialId));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return {
      wrapped_key: dataKey.wrapped,
      ciphertext: Buffer.concat([nonce, cipher.getAuthTag(), ct]).toString('base64'),
    };
  } finally {
    dataKey.plaintext.fill(0);
    plaintext.fill(0);
  }
}

/**
 * Decrypts the secrets of credential `credentialId` (`label` names it in messages). The key provider's refusals keep
 * their code (PERMISSION_DENIED for a destroyed KEK, UNAVAILABLE ...); a record that does not decrypt is
 * DATA_CORRUPTION.
 */
export async function openSecrets(
  keys: KeyProvider,
  credentialId: string,
  sealed: SealedSecrets,
  label: string,
): Promise<CredentialSecrets> {
  let dataKey: Buffer;
  try {
    dataKey = await keys.unwrap(sealed.wrapped_key, contextFor(credentialId));
  } catch (err: unknown) {
    if (!isFerryError(err)) throw err;
    throw new FerryError(err.code, `cannot read the secrets of credential ${label}: ${err.message}`, { cause: err });
  }
  try {
    const raw = Buffer.from(sealed.ciphertext, 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new Error('ciphertext too short');
    const decipher = createDecipheriv('aes-256-gcm', dataKey, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(aad(credentialId));
    decipher.setAuthTag(raw.subarray(NONCE_BYTES, NONCE_BYTES + TAG_BYTES));
    const plaintext = Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES + TAG_BYTES)), decipher.final()]);
    const secrets = JSON.parse(plaintext.toString('utf8')) as CredentialSecrets;
    plaintext.fill(0);
    return secrets;
  } catch {
    // No cause: a JSON error would quote the decrypted secrets.
    throw new FerryError(
      'DATA_CORRUPTION',
      `the secrets of credential ${label} do not decrypt: the stored record was altered; delete and re-create it`,
    );
  } finally {
    dataKey.fill(0);
  }
}
