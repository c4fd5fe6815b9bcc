/**
 * Request schemas of Ferry's key routes (an addition under /v1, snake_case like the rest): create, rotate and
 * destroy KEKs. They check shapes; the key providers check names (and say which field is wrong).
 */
import { z } from 'zod';
import { KEY_PROVIDER_NAMES } from '../../kms/index.js';
import { typeError } from './common.js';
import { credentialRefSchema } from './credentials.js';

/** A KEK: a local or Vault key name, or a KMS key id, ARN or alias (the provider checks the exact form). */
const kekSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(2048, 'is too long')
  .regex(/^[A-Za-z0-9:/_.-]+$/, 'must be a KEK name, or a KMS key id, ARN or alias');

/** `POST /v1/keys`: `{ kek }`, a new KEK in the local keyring. */
export const createKeySchema = z.strictObject({ kek: kekSchema }, typeError('a JSON object'));

/** `POST /v1/keys/rotate`: `{ kek, key_provider?, credential_id? }`. */
export const rotateKeySchema = z.strictObject(
  {
    kek: kekSchema,
    key_provider: z
      .enum(KEY_PROVIDER_NAMES, { error: () => `must be one of ${KEY_PROVIDER_NAMES.join(', ')}` })
      .optional(),
    credential_id: credentialRefSchema.optional(),
  },
  typeError('a JSON object'),
);

/** `POST /v1/keys/destroy`: `{ kek, force?, dry_run? }`, a KEK of the local keyring. */
export const destroyKeySchema = z.strictObject(
  {
    kek: kekSchema,
    force: z.boolean(typeError('true or false')).optional(),
    dry_run: z.boolean(typeError('true or false')).optional(),
  },
  typeError('a JSON object'),
);
