/**
 * KEK overrides: one repository has one master secret under one KEK, so backups of a volume labelled
 * `ferry.io/kek` (and optionally `ferry.io/key-provider`) with a KEK other than its credential's go to a separate
 * repository under a sub-prefix of the credential's root: `kek-<name>/` for a local-keyring KEK, or
 * `kek-<provider>-<name>/` for the other providers (characters a key cannot hold become '_', with a short hash of
 * the name added so that two names never meet). A small plaintext marker `keks/<sub-prefix>` in the credential's root
 * lists it, so restores, listings and rotation find it: `{ "prefix", "provider", "kek" }` (names only, no keys).
 */
import { createHash } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import { checkKekName, checkKmsKeyId, KEY_PROVIDER_NAMES, LOCAL_PROVIDER } from '../../kms/index.js';
import type { KekRef } from '../repo/repository.js';
import type { ObjectStore } from '../store/index.js';

/** Volume label naming the KEK that protects the volume's backups (overrides the credential's `kek`). */
export const KEK_LABEL = 'ferry.io/kek';
/** Volume label naming the provider of `ferry.io/kek`; default the credential's `key_provider`. */
export const KEY_PROVIDER_LABEL = 'ferry.io/key-provider';
/** Key prefix of the markers of KEK-override repositories, in the credential's root. */
export const MARKERS_PREFIX = 'keks/';

const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The sub-prefix (no trailing '/') of the repository for `ref` under a credential's root. */
export function kekPrefix(ref: KekRef): string {
  if (ref.provider === LOCAL_PROVIDER && SAFE.test(ref.kek)) return `kek-${ref.kek}`;
  const slug = ref.kek.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  const hash = createHash('sha256').update(ref.kek).digest('hex').slice(0, 8);
  return SAFE.test(ref.kek) && slug === ref.kek ? `kek-${ref.provider}-${slug}` : `kek-${ref.provider}-${slug}-${hash}`;
}

/** The KEK a volume's labels ask for, or undefined when they name none. INVALID_ARGUMENT for a bad label value. */
export function kekFromLabels(labels: Readonly<Record<string, string>>, fallbackProvider: string): KekRef | undefined {
  const kek = labels[KEK_LABEL];
  const provider = labels[KEY_PROVIDER_LABEL] ?? fallbackProvider;
  if (kek === undefined) return undefined;
  if (!(KEY_PROVIDER_NAMES as readonly string[]).includes(provider)) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `volume label ${KEY_PROVIDER_LABEL}: must be one of ${KEY_PROVIDER_NAMES.join(', ')}`,
    );
  }
  try {
    if (provider === 'aws-kms') checkKmsKeyId(kek);
    else checkKekName(kek);
  } catch (err: unknown) {
    throw new FerryError('INVALID_ARGUMENT', `volume label ${KEK_LABEL}: ${err instanceof Error ? err.message : ''}`, {
      cause: err,
    });
  }
  return { provider, kek };
}

/** Records that the credential's root holds a repository for `ref` (idempotent). */
export async function writeMarker(root: ObjectStore, ref: KekRef, signal?: AbortSignal): Promise<void> {
  const key = `${MARKERS_PREFIX}${kekPrefix(ref)}`;
  if ((await root.head(key, { signal })) !== undefined) return;
  const body = { prefix: kekPrefix(ref), provider: ref.provider, kek: ref.kek };
  await root.put(key, Buffer.from(JSON.stringify(body)), { signal });
}

function isRef(value: unknown): value is KekRef {
  const v = value as Partial<Record<keyof KekRef, unknown>> | null;
  return typeof v === 'object' && v !== null && typeof v.provider === 'string' && typeof v.kek === 'string';
}

/** Every KEK-override repository the markers in the credential's root list. */
export async function readMarkers(root: ObjectStore, signal?: AbortSignal): Promise<KekRef[]> {
  const out: KekRef[] = [];
  let token: string | undefined;
  do {
    const page = await root.list(MARKERS_PREFIX, { continuationToken: token, signal });
    for (const o of page.objects) {
      let parsed: unknown;
      try {
        parsed = JSON.parse((await root.get(o.key, { signal })).toString('utf8'));
      } catch (err: unknown) {
        throw new FerryError('DATA_CORRUPTION', `KEK marker ${o.key} in ${root.location} is not valid JSON`, {
          cause: err,
        });
      }
      if (!isRef(parsed) || `${MARKERS_PREFIX}${kekPrefix(parsed)}` !== o.key) {
        throw new FerryError('DATA_CORRUPTION', `KEK marker ${o.key} in ${root.location} does not name its repository`);
      }
      out.push({ provider: parsed.provider, kek: parsed.kek });
    }
    token = page.continuationToken;
  } while (token !== undefined);
  return out;
}
