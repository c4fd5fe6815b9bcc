/**
 * Checks a create request field by field. Every failure is INVALID_ARGUMENT naming the field as the API spells it
 * (`aws_credential.endpoint`); the output splits the credential into what may be shown and what must be sealed.
 */
import { isAbsolute } from 'node:path';
import { invalidArgument } from '../../common/index.js';
import {
  AWS_KMS_PROVIDER,
  checkKekName,
  checkKmsKeyId,
  DEFAULT_KEK,
  KEY_PROVIDER_NAMES,
  type KeyProviderName,
  LOCAL_PROVIDER,
} from '../../kms/index.js';
import {
  CREDENTIAL_PROVIDERS,
  type CredentialInfo,
  type CredentialProvider,
  type CredentialSecrets,
  PROVIDER_BLOCKS,
} from './types.js';

/** Longest credential name. */
export const MAX_CREDENTIAL_NAME_LENGTH = 128;
/** Most labels on a credential. */
export const MAX_CREDENTIAL_LABELS = 64;

/** A checked request: the shown part (without id and creation time) and the secret part. */
export interface CheckedCredential {
  info: Omit<CredentialInfo, 'credential_id' | 'created'>;
  secrets: CredentialSecrets;
  /** Directory credentials: create `path/bucket` when missing (`directory_credential.create`). */
  createDirectory?: boolean;
}

type Fields = Record<string, unknown>;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;

function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(fields: Fields, key: string, field: string, options: { required: boolean; max: number }): string {
  const value = fields[key];
  if (value === undefined || value === '') {
    if (options.required) throw invalidArgument(field, 'is required');
    return '';
  }
  if (typeof value !== 'string') throw invalidArgument(field, 'must be a string');
  if (value.length > options.max) throw invalidArgument(field, `must be at most ${options.max} characters`);
  if (CONTROL.test(value)) throw invalidArgument(field, 'must not contain control characters');
  return value;
}

function flag(fields: Fields, key: string, field: string): boolean | undefined {
  const value = fields[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalidArgument(field, 'must be true or false');
  return value;
}

/** An endpoint: an http(s) URL, or HOST[:PORT]; no user name, password, query or fragment. */
function endpoint(fields: Fields, field: string): string | undefined {
  const value = text(fields, 'endpoint', field, { required: false, max: 2048 }).trim();
  if (value === '') return undefined;
  const hint = 'must be an http(s) URL or HOST[:PORT], e.g. https://s3.example.com or 127.0.0.1:7480';
  if (!value.includes('://')) {
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(value) && !/^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(value)) {
      throw invalidArgument(field, hint);
    }
    return value;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(field, hint);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw invalidArgument(field, hint);
  }
  if (url.username !== '' || url.password !== '') {
    throw invalidArgument(field, 'must not hold a user name or password; give keys in their own fields');
  }
  if (url.search !== '' || url.hash !== '') throw invalidArgument(field, 'must not have a query or fragment');
  return value;
}

function name(request: Fields): string {
  const value = text(request, 'name', 'name', { required: true, max: MAX_CREDENTIAL_NAME_LENGTH });
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value)) {
    throw invalidArgument('name', 'must start with a letter or digit and hold only letters, digits, ".", "_", "-"');
  }
  return value;
}

function bucket(request: Fields): string {
  const value = text(request, 'bucket', 'bucket', { required: true, max: 255 });
  if (value.includes('/') || value.includes('\\') || value === '.' || value === '..' || /\s/.test(value)) {
    throw invalidArgument('bucket', 'must be a bucket or container name: no "/", "\\" or spaces, not "." or ".."');
  }
  return value;
}

/** The prefix without leading or trailing '/'; undefined for the bucket's root. */
function prefix(request: Fields): string | undefined {
  const value = text(request, 'prefix', 'prefix', { required: false, max: 512 }).replace(/^\/+|\/+$/g, '');
  if (value === '') return undefined;
  if (value.includes('\\') || value.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw invalidArgument('prefix', 'must be a "/"-separated path without empty, "." or ".." segments or "\\"');
  }
  return value;
}

function labels(request: Fields): Record<string, string> {
  const value = request.labels;
  if (value === undefined) return {};
  if (!isRecord(value)) throw invalidArgument('labels', 'must be an object of string values');
  const entries = Object.entries(value);
  if (entries.length > MAX_CREDENTIAL_LABELS) {
    throw invalidArgument('labels', `must hold at most ${MAX_CREDENTIAL_LABELS} labels`);
  }
  const out: Record<string, string> = {};
  for (const [key, v] of entries) {
    if (key === '' || key.length > 253 || CONTROL.test(key)) throw invalidArgument(`labels.${key}`, 'bad label key');
    if (typeof v !== 'string' || v.length > 1024 || CONTROL.test(v)) {
      throw invalidArgument(`labels.${key}`, 'must be a string of at most 1024 characters without control codes');
    }
    out[key] = v;
  }
  return out;
}

/** Which provider the request is for: `provider` if given, else the one provider block present. */
function provider(request: Fields): CredentialProvider {
  const present = CREDENTIAL_PROVIDERS.filter((p) => request[PROVIDER_BLOCKS[p]] !== undefined);
  const given = request.provider;
  if (given !== undefined) {
    if (typeof given !== 'string' || !(CREDENTIAL_PROVIDERS as readonly string[]).includes(given)) {
      throw invalidArgument('provider', `must be one of ${CREDENTIAL_PROVIDERS.join(', ')}`);
    }
    const chosen = given as CredentialProvider;
    const other = present.find((p) => p !== chosen);
    if (other !== undefined) {
      throw invalidArgument(PROVIDER_BLOCKS[other], `does not go with provider ${chosen}`);
    }
    if (!present.includes(chosen)) throw invalidArgument(PROVIDER_BLOCKS[chosen], `is required for provider ${chosen}`);
    return chosen;
  }
  const [first, second] = present;
  if (first === undefined) {
    throw invalidArgument('provider', `is required: one of ${CREDENTIAL_PROVIDERS.join(', ')}, with its block`);
  }
  if (second !== undefined) {
    throw invalidArgument(PROVIDER_BLOCKS[second], `give only one provider block (${PROVIDER_BLOCKS[first]} is given)`);
  }
  return first;
}

function block(request: Fields, key: string): Fields {
  const value = request[key];
  if (!isRecord(value)) throw invalidArgument(key, 'must be an object');
  return value;
}

function optional<T>(key: string, value: T | undefined): Partial<Record<string, T>> {
  return value === undefined ? {} : { [key]: value };
}

/** Checks the provider block; fills `info` and `secrets`. */
function providerBlock(request: Fields, p: CredentialProvider, checked: CheckedCredential): void {
  const key = PROVIDER_BLOCKS[p];
  const b = block(request, key);
  const f = (field: string): string => `${key}.${field}`;
  const keyText = (field: string, required: boolean): string =>
    text(b, field, f(field), { required, max: field === 'json_key' ? 65536 : 1024 });
  if (p === 's3') {
    const region = text(b, 'region', f('region'), { required: false, max: 64 });
    if (region !== '' && !/^[A-Za-z0-9-]+$/.test(region)) throw invalidArgument(f('region'), 'must be like us-east-1');
    checked.info.aws_credential = {
      access_key: keyText('access_key', true),
      ...optional('endpoint', endpoint(b, f('endpoint'))),
      ...optional('region', region === '' ? undefined : region),
      ...optional('disable_ssl', flag(b, 'disable_ssl', f('disable_ssl'))),
      ...optional('disable_path_style', flag(b, 'disable_path_style', f('disable_path_style'))),
    };
    checked.secrets.secret_key = keyText('secret_key', true);
  } else if (p === 'azure') {
    const account = text(b, 'account_name', f('account_name'), { required: true, max: 64 });
    if (!/^[a-z0-9]{3,24}$/.test(account)) {
      throw invalidArgument(f('account_name'), 'must be 3-24 lowercase letters and digits');
    }
    checked.info.azure_credential = { account_name: account, ...optional('endpoint', endpoint(b, f('endpoint'))) };
    checked.secrets.account_key = keyText('account_key', true);
  } else if (p === 'google') {
    const project = text(b, 'project_id', f('project_id'), { required: false, max: 128 });
    checked.info.google_credential = {
      access_key: keyText('access_key', true),
      ...optional('project_id', project === '' ? undefined : project),
      ...optional('endpoint', endpoint(b, f('endpoint'))),
    };
    checked.secrets.secret_key = keyText('secret_key', true);
    const json = keyText('json_key', false);
    if (json !== '') checked.secrets.json_key = json;
  } else {
    const path = text(b, 'path', f('path'), { required: true, max: 4096 });
    if (!isAbsolute(path)) throw invalidArgument(f('path'), 'must be an absolute path');
    checked.info.directory_credential = { path };
    if (flag(b, 'create', f('create')) === true) checked.createDirectory = true;
  }
}

/** `key_provider`: one of KEY_PROVIDER_NAMES; default 'local'. */
function keyProvider(request: Record<string, unknown>): KeyProviderName {
  const value = request.key_provider ?? LOCAL_PROVIDER;
  if (typeof value !== 'string' || !(KEY_PROVIDER_NAMES as readonly string[]).includes(value)) {
    throw invalidArgument('key_provider', `must be one of ${KEY_PROVIDER_NAMES.join(', ')}`);
  }
  return value as KeyProviderName;
}

/** `kek`: a KEK name (local, Vault) or a KMS key id, ARN or alias (aws-kms); default `default`. */
function kek(request: Record<string, unknown>): string {
  const provider = keyProvider(request);
  if (request.kek === undefined) {
    if (provider !== LOCAL_PROVIDER) throw invalidArgument('kek', `is required with key_provider ${provider}`);
    return DEFAULT_KEK;
  }
  return provider === AWS_KMS_PROVIDER ? checkKmsKeyId(request.kek, 'kek') : checkKekName(request.kek, 'kek');
}

/** Checks a create request (of unknown shape: it may come from anywhere) and splits it. */
export function checkCreateRequest(request: unknown): CheckedCredential {
  if (!isRecord(request)) throw invalidArgument('body', 'must be an object');
  const chosen = provider(request);
  const checked: CheckedCredential = {
    info: {
      name: name(request),
      provider: chosen,
      bucket: bucket(request),
      kek: kek(request),
      labels: labels(request),
    },
    secrets: {},
  };
  if (request.key_provider !== undefined) checked.info.key_provider = keyProvider(request);
  const p = prefix(request);
  if (p !== undefined) checked.info.prefix = p;
  providerBlock(request, chosen, checked);
  return checked;
}
