/**
 * `ferry credentials create|list|inspect|delete|validate` (pxctl-like). Keys may come from FERRY_ACCESS_KEY and
 * FERRY_SECRET_KEY instead of flags, so they stay out of shell history and the process list.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { CreateCredentialRequest, CredentialInfo, CredentialProvider } from '../../api/index.js';
import type { FerryClient } from '../client.js';
import { clientFor, output } from '../context.js';
import { formatLabels, parseLabel, renderTable } from '../format.js';
import { schedulesGone } from './volume.js';

interface CreateOptions {
  provider: CredentialProvider;
  bucket: string;
  accessKey?: string;
  secretKey?: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  disableSsl?: boolean;
  projectId?: string;
  path?: string;
  create?: boolean;
  prefix?: string;
  kek?: string;
  keyProvider?: 'local' | 'vault' | 'aws-kms';
  label?: Record<string, string>;
}

const HELP = `
Keys: --access-key/--secret-key, or env FERRY_ACCESS_KEY/FERRY_SECRET_KEY (preferred: flags are visible in shell
history and to other users through the process list).
  s3        access key and secret key of S3 or any S3-compatible store (--endpoint for Ceph RGW, MinIO, ...)
  google    HMAC keys of Google Cloud Storage (Settings > Interoperability); Ferry uses GCS's S3-compatible API
  azure     storage account name as --access-key, account key as --secret-key (--endpoint for Azurite)
  directory no keys: --path is a directory on the node, --bucket a directory inside it (--create makes it);
            it must be under the node's directory roots (default <data dir>/objects; admins may use others)

Examples:
  FERRY_SECRET_KEY=... ferry credentials create offsite --provider s3 --bucket backups --access-key AKIA... \\
      --endpoint https://s3.example.com --region us-east-1 --prefix cluster-a
  ferry credentials create local --provider directory --path /var/lib/ferry/objects --bucket backups --create`;

function keyFrom(flag: string | undefined, env: string, name: string, provider: string): string {
  const value = flag ?? process.env[env];
  if (value === undefined || value === '') {
    throw new InvalidArgumentError(`--${name} (or env ${env}) is required for provider ${provider}`);
  }
  return value;
}

/** The SdkCredentialCreateRequest the options describe. */
export function createRequest(name: string, o: CreateOptions): CreateCredentialRequest {
  const request: CreateCredentialRequest = { name, provider: o.provider, bucket: o.bucket };
  const endpoint = o.endpoint === undefined ? {} : { endpoint: o.endpoint };
  const keys = (): { access_key: string; secret_key: string } => ({
    access_key: keyFrom(o.accessKey, 'FERRY_ACCESS_KEY', 'access-key', o.provider),
    secret_key: keyFrom(o.secretKey, 'FERRY_SECRET_KEY', 'secret-key', o.provider),
  });
  if (o.provider === 's3') {
    request.aws_credential = {
      ...keys(),
      ...endpoint,
      ...(o.region !== undefined && { region: o.region }),
      ...(o.disableSsl === true && { disable_ssl: true }),
      ...(o.pathStyle !== undefined && { disable_path_style: !o.pathStyle }),
    };
  } else if (o.provider === 'google') {
    request.google_credential = {
      ...keys(),
      ...endpoint,
      ...(o.projectId !== undefined && { project_id: o.projectId }),
    };
  } else if (o.provider === 'azure') {
    const { access_key, secret_key } = keys();
    request.azure_credential = { account_name: access_key, account_key: secret_key, ...endpoint };
  } else {
    if (o.path === undefined) throw new InvalidArgumentError('--path is required for provider directory');
    request.directory_credential = { path: o.path, ...(o.create === true && { create: true }) };
  }
  if (o.prefix !== undefined) request.prefix = o.prefix;
  if (o.kek !== undefined) request.kek = o.kek;
  if (o.keyProvider !== undefined) request.key_provider = o.keyProvider;
  if (o.label !== undefined) request.labels = o.label;
  return request;
}

/** Where a credential points: its endpoint (or the provider's default), or the directory. */
function whereOf(c: CredentialInfo): string {
  if (c.directory_credential !== undefined) return c.directory_credential.path;
  const endpoint = c.aws_credential?.endpoint ?? c.azure_credential?.endpoint ?? c.google_credential?.endpoint;
  return endpoint ?? '(provider default)';
}

/** One line per field, like `pxctl credentials list` of one credential. */
export function describeCredential(c: CredentialInfo): string {
  const rows: [string, string][] = [
    ['Credential ID', c.credential_id],
    ['Name', c.name],
    ['Provider', c.provider],
    ['Bucket', c.bucket],
    ['Prefix', c.prefix ?? '-'],
    ['Endpoint', whereOf(c)],
  ];
  const accessKey = c.aws_credential?.access_key ?? c.google_credential?.access_key;
  if (accessKey !== undefined) rows.push(['Access key', accessKey]);
  if (c.aws_credential?.region !== undefined) rows.push(['Region', c.aws_credential.region]);
  if (c.azure_credential !== undefined) rows.push(['Account', c.azure_credential.account_name]);
  if (c.google_credential?.project_id !== undefined) rows.push(['Project', c.google_credential.project_id]);
  rows.push(
    ['KEK', c.kek],
    ['Key provider', c.key_provider ?? 'local'],
    ['Labels', formatLabels(c.labels)],
    ['Created', c.created],
  );
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${key.padEnd(width)}  :  ${value}`).join('\n');
}

async function listCredentials(client: FerryClient): Promise<CredentialInfo[]> {
  const { credential_ids } = await client.request<{ credential_ids: string[] }>('GET', '/v1/credentials');
  return Promise.all(credential_ids.map((id) => inspectCredential(client, id)));
}

function inspectCredential(client: FerryClient, ref: string): Promise<CredentialInfo> {
  return client.request('GET', `/v1/credentials/inspect/${encodeURIComponent(ref)}`);
}

/** Adds `credentials` and its subcommands to `program`. */
export function registerCredentialCommands(program: Command): void {
  const credentials = program
    .command('credentials')
    .description('manage cloud credentials (where backups go, and the keys to get there)');

  credentials
    .command('create')
    .description('store a credential; secrets are encrypted at rest and never shown again')
    .argument('<name>', 'credential name')
    .addOption(
      new Option('--provider <provider>', 'object store kind')
        .choices(['s3', 'azure', 'google', 'directory'])
        .makeOptionMandatory(),
    )
    .requiredOption('--bucket <bucket>', 'bucket (S3, Google), container (Azure) or directory (directory)')
    .option('--access-key <key>', 'access key / HMAC access id / Azure account name (env FERRY_ACCESS_KEY)')
    .option('--secret-key <key>', 'secret key / HMAC secret / Azure account key (env FERRY_SECRET_KEY)')
    .option('--endpoint <url>', 'endpoint URL or HOST:PORT of an S3-compatible store, Azurite, ...')
    .option('--region <region>', 'S3 region (default us-east-1)')
    .option('--path-style', 'S3 path-style URLs (default when --endpoint is given)')
    .option('--no-path-style', 'S3 virtual-hosted-style URLs (default for AWS)')
    .option('--disable-ssl', 'use http for an endpoint given as HOST:PORT')
    .option('--project-id <id>', 'Google project id (informational)')
    .option('--path <dir>', 'directory provider: absolute path of a directory on the node')
    .option('--create', 'directory provider: create the bucket directory under --path when it does not exist')
    .option('--prefix <prefix>', 'key prefix inside the bucket, e.g. cluster-a')
    .option('--kek <name>', 'KEK protecting backups written with this credential (default: default)')
    .addOption(
      new Option('--key-provider <provider>', 'provider holding the KEK (default local)').choices([
        'local',
        'vault',
        'aws-kms',
      ]),
    )
    .option('--label <key=value>', 'label to set (repeatable)', parseLabel)
    .addHelpText('after', HELP)
    .action(async (name: string, options: CreateOptions, command: Command) => {
      const response = await clientFor(command).request<{ credential_id: string }>(
        'POST',
        '/v1/credentials',
        createRequest(name, options),
      );
      output(command, response, () => `Credential successfully created: ${response.credential_id}`);
    });

  credentials
    .command('list')
    .description('list credentials')
    .action(async (_options: object, command: Command) => {
      const list = await listCredentials(clientFor(command));
      output(command, { credentials: list }, () =>
        list.length === 0
          ? 'no credentials'
          : renderTable(
              ['ID', 'NAME', 'PROVIDER', 'BUCKET', 'ENDPOINT'],
              list.map((c) => [
                c.credential_id,
                c.name,
                c.provider,
                c.prefix ? `${c.bucket}/${c.prefix}` : c.bucket,
                whereOf(c),
              ]),
            ),
      );
    });

  credentials
    .command('inspect')
    .description('show a credential (never its secrets)')
    .argument('<credential>', 'credential id or name')
    .action(async (ref: string, _options: object, command: Command) => {
      const info = await inspectCredential(clientFor(command), ref);
      output(command, info, () => describeCredential(info));
    });

  credentials
    .command('delete')
    .description('delete a credential')
    .argument('<credential>', 'credential id or name')
    .option('--with-schedules', 'also delete the cloud backup schedules using it (else they make it refuse)')
    .action(async (ref: string, options: { withSchedules?: boolean }, command: Command) => {
      const query = options.withSchedules === true ? '?with_schedules=true' : '';
      const response = await clientFor(command).request<{ deleted_schedule_ids?: string[] }>(
        'DELETE',
        `/v1/credentials/${encodeURIComponent(ref)}${query}`,
      );
      output(command, response, () => `Credential ${ref} successfully deleted${schedulesGone(response)}`);
    });

  credentials
    .command('validate')
    .description('check for real that the node can list, write, read and delete in the bucket')
    .argument('<credential>', 'credential id or name')
    .action(async (ref: string, _options: object, command: Command) => {
      const response = await clientFor(command).request<Record<string, never>>(
        'GET',
        `/v1/credentials/validate/${encodeURIComponent(ref)}`,
      );
      output(command, response, () => `Credential ${ref} validated: the node can list, write, read and delete`);
    });
}
