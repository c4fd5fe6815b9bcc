/**
 * The remote providers' client libraries, loaded on first use. Together they cost a node about 18 MiB of memory and
 * a noticeable start-up time, and most nodes run on the local keyring alone. Both are loaded through `require`
 * (each ships CommonJS) so the functions that build clients stay synchronous.
 */
import { createRequire } from 'node:module';

type KmsSdk = typeof import('@aws-sdk/client-kms');
type NodeVault = typeof import('node-vault');

const load = createRequire(import.meta.url);
let kms: KmsSdk | undefined;
let vault: NodeVault | undefined;

/** `@aws-sdk/client-kms`. */
export function kmsSdk(): KmsSdk {
  kms ??= load('@aws-sdk/client-kms') as KmsSdk;
  return kms;
}

/** `node-vault`'s factory. */
export function nodeVaultSdk(): NodeVault {
  vault ??= load('node-vault') as NodeVault;
  return vault;
}
