/**
 * Cloud credentials, shaped after OpenStorage's SdkCredentialCreateRequest / SdkCredentialInspectResponse
 * (libopenstorage/openstorage api/api.proto): a name, a bucket, and one provider block. Ferry adds the `directory`
 * provider (the embedded local object store), an explicit `provider`, an `endpoint` for Azure and Google, S3-interop
 * HMAC keys for Google (`access_key`/`secret_key`: Ferry reaches GCS through its S3-compatible XML API), `prefix`
 * (where in the bucket Ferry writes), `kek` (the KEK protecting backups written with the credential), `key_provider`
 * (which provider holds that KEK: 'local', 'vault' or 'aws-kms') and labels.
 *
 * Secret fields (`secret_key`, `account_key`, `json_key`) are never returned by inspect and never stored in clear.
 */

import type { KeyProviderName } from '../../kms/index.js';

/** The object-store kinds a credential can point at. */
export const CREDENTIAL_PROVIDERS = ['s3', 'azure', 'google', 'directory'] as const;
export type CredentialProvider = (typeof CREDENTIAL_PROVIDERS)[number];

/** The request block of each provider, as in api.proto's oneof `credential_type` (plus Ferry's directory). */
export const PROVIDER_BLOCKS = {
  s3: 'aws_credential',
  azure: 'azure_credential',
  google: 'google_credential',
  directory: 'directory_credential',
} as const satisfies Record<CredentialProvider, string>;

/** SdkAwsCredentialRequest (S3 and S3-compatible stores). */
export interface AwsCredential {
  access_key: string;
  /** Secret. */
  secret_key: string;
  /** `https://host[:port]`, `http://...`, or `host[:port]` (then `disable_ssl` picks http). Default: AWS. */
  endpoint?: string;
  region?: string;
  /** Use http for an endpoint given without a scheme. Default false. */
  disable_ssl?: boolean;
  /** Use virtual-hosted-style URLs. Default: path style when an endpoint is given, virtual-hosted for AWS. */
  disable_path_style?: boolean;
}

/** SdkAzureCredentialRequest plus an endpoint (e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1`). */
export interface AzureCredential {
  account_name: string;
  /** Secret. */
  account_key: string;
  /** Default `https://ACCOUNT.blob.core.windows.net`. */
  endpoint?: string;
}

/**
 * SdkGoogleCredentialRequest plus the HMAC keys Ferry uses: data goes through GCS's S3-interoperable XML API, which
 * takes HMAC keys (Cloud Storage > Settings > Interoperability). `project_id` and `json_key` are kept (the key
 * encrypted) but not used for data access yet.
 */
export interface GoogleCredential {
  access_key: string;
  /** Secret. */
  secret_key: string;
  project_id?: string;
  /** Secret: a service-account JSON key. */
  json_key?: string;
  /** Default `https://storage.googleapis.com`. */
  endpoint?: string;
}

/**
 * Ferry's embedded store: `bucket` is a directory under `path`. It must lie under one of the node's directory roots
 * (`ferry node start --directory-roots`, default `<data dir>/objects`), or, for a `system.admin`, anywhere outside
 * the system directories (see directory-policy.ts).
 */
export interface DirectoryCredential {
  /** An absolute path of a directory; `path/bucket` must exist (or be created with `create`). */
  path: string;
  /** Set by the node when an admin's credential points outside the directory roots. */
  outside_roots?: boolean;
}

/** The directory block of a create request. */
export interface DirectoryCredentialRequest {
  /** An absolute path of a directory on the node. */
  path: string;
  /** Create `path/bucket` (mode 0700) when it does not exist. Default false: it must exist. */
  create?: boolean;
}

/** What `create` takes (the body of `POST /v1/credentials`). */
export interface CreateCredentialRequest {
  /** Unique among credentials: 1-128 letters, digits, '.', '_', '-'. */
  name: string;
  /** Optional when exactly one provider block is given: it then names the provider. */
  provider?: CredentialProvider;
  /** Bucket (S3, GCS), container (Azure) or directory under `directory_credential.path`. */
  bucket: string;
  aws_credential?: AwsCredential;
  azure_credential?: AzureCredential;
  google_credential?: GoogleCredential;
  directory_credential?: DirectoryCredentialRequest;
  /** Key prefix inside the bucket under which Ferry writes, e.g. `cluster-a`. Default: the bucket's root. */
  prefix?: string;
  /** Name of the KEK protecting backups written with this credential. Default `default` (required for vault, aws-kms). */
  kek?: string;
  /** The key provider holding `kek`: 'local', 'vault' or 'aws-kms'. Default 'local'. */
  key_provider?: KeyProviderName;
  labels?: Record<string, string>;
}

/** A credential with every field, secrets included: for internal use only (`CredentialStore.resolve`). */
export interface Credential {
  credential_id: string;
  name: string;
  provider: CredentialProvider;
  bucket: string;
  /** Normalised: no leading or trailing '/'; absent for the bucket's root. */
  prefix?: string;
  kek: string;
  /** The provider holding `kek`; absent means 'local' (records written before providers were selectable). */
  key_provider?: KeyProviderName;
  labels: Record<string, string>;
  /** RFC 3339. */
  created: string;
  aws_credential?: AwsCredential;
  azure_credential?: AzureCredential;
  google_credential?: GoogleCredential;
  directory_credential?: DirectoryCredential;
}

/** SdkAwsCredentialResponse: no secret key. */
export type AwsCredentialView = Omit<AwsCredential, 'secret_key'>;
/** SdkAzureCredentialResponse: no account key. */
export type AzureCredentialView = Omit<AzureCredential, 'account_key'>;
/** SdkGoogleCredentialResponse: no secret key, no JSON key. */
export type GoogleCredentialView = Omit<GoogleCredential, 'secret_key' | 'json_key'>;

/** SdkCredentialInspectResponse plus Ferry's fields: a credential without its secrets. */
export interface CredentialInfo {
  credential_id: string;
  name: string;
  provider: CredentialProvider;
  bucket: string;
  prefix?: string;
  kek: string;
  /** The provider holding `kek`; absent means 'local'. */
  key_provider?: KeyProviderName;
  labels: Record<string, string>;
  created: string;
  aws_credential?: AwsCredentialView;
  azure_credential?: AzureCredentialView;
  google_credential?: GoogleCredentialView;
  directory_credential?: DirectoryCredential;
}

/** The secret fields of a credential, encrypted together at rest. */
export interface CredentialSecrets {
  secret_key?: string;
  account_key?: string;
  json_key?: string;
}

/** The KEK a credential names and the provider holding it (records without `key_provider` are 'local'). */
export function credentialKek(credential: Pick<CredentialInfo, 'kek' | 'key_provider'>): {
  provider: KeyProviderName;
  kek: string;
} {
  return { provider: credential.key_provider ?? 'local', kek: credential.kek };
}
