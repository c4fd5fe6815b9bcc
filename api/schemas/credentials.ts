/**
 * Request schemas of the OpenStorageCredentials rpcs (SdkCredential*Request), snake_case as in api.proto. They check
 * shapes and types; the credential store checks values (endpoint URLs, paths, KEK names) and names the same fields.
 */
import { z } from 'zod';
import { CREDENTIAL_PROVIDERS } from '../../cloudsnap/index.js';
import { KEY_PROVIDER_NAMES } from '../../kms/index.js';
import { labelsSchema, nameSchema, typeError } from './common.js';

const text = z.string(typeError('a string'));
const flag = z.boolean(typeError('true or false'));

/** SdkAwsCredentialRequest plus `disable_path_style`. */
const awsCredentialSchema = z.strictObject(
  {
    access_key: text,
    secret_key: text,
    endpoint: text.optional(),
    region: text.optional(),
    disable_ssl: flag.optional(),
    disable_path_style: flag.optional(),
  },
  typeError('an object'),
);

/** SdkAzureCredentialRequest plus `endpoint` (e.g. Azurite). */
const azureCredentialSchema = z.strictObject(
  { account_name: text, account_key: text, endpoint: text.optional() },
  typeError('an object'),
);

/** SdkGoogleCredentialRequest plus the HMAC keys of GCS's S3-interoperable API, which Ferry uses for data. */
const googleCredentialSchema = z.strictObject(
  {
    access_key: text,
    secret_key: text,
    project_id: text.optional(),
    json_key: text.optional(),
    endpoint: text.optional(),
  },
  typeError('an object'),
);

/** Ferry's embedded directory store. */
const directoryCredentialSchema = z.strictObject({ path: text, create: flag.optional() }, typeError('an object'));

/**
 * SdkCredentialCreateRequest: `{ name, bucket, aws_credential | azure_credential | google_credential }`, plus
 * Ferry's `directory_credential`, `provider` (optional when one block is given), `prefix`, `kek`, `key_provider` and
 * `labels`.
 */
export const createCredentialSchema = z.strictObject(
  {
    name: nameSchema,
    provider: z
      .enum(CREDENTIAL_PROVIDERS, { error: () => `must be one of ${CREDENTIAL_PROVIDERS.join(', ')}` })
      .optional(),
    bucket: text,
    aws_credential: awsCredentialSchema.optional(),
    azure_credential: azureCredentialSchema.optional(),
    google_credential: googleCredentialSchema.optional(),
    directory_credential: directoryCredentialSchema.optional(),
    prefix: text.optional(),
    kek: text.optional(),
    key_provider: z
      .enum(KEY_PROVIDER_NAMES, { error: () => `must be one of ${KEY_PROVIDER_NAMES.join(', ')}` })
      .optional(),
    labels: labelsSchema.optional(),
  },
  typeError('a JSON object'),
);

/** `{credential_id}` in a path: a credential's id (a UUID) or its name. */
export const credentialRefSchema = z
  .string(typeError('a string'))
  .min(1, 'must not be empty')
  .max(128, 'is too long')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a credential id or name');

export type CreateCredentialBody = z.output<typeof createCredentialSchema>;
