/**
 * The way to an etcd-backed cluster store from outside `node/cluster/`: the etcd client (gRPC and protobuf, about
 * 0.2 s to load) is loaded when a node first connects to etcd, not by every process that imports `node/` (the `ferry`
 * command included).
 */
import type { EtcdStore, EtcdStoreOptions } from './etcd-store.js';

/** An EtcdStore with its own client on `urls` (e.g. `['http://10.0.0.1:2379']`); closing the store closes it. */
export async function connectEtcd(urls: readonly string[], options: EtcdStoreOptions = {}): Promise<EtcdStore> {
  const { openEtcdStore } = await import('./etcd-store.js');
  return openEtcdStore(urls, options);
}
