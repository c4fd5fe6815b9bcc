import { describeClusterStoreConformance } from './conformance.js';
import { MemoryKv, MemoryStore } from './memory-store.js';
import type { ClusterStore } from './types.js';

describeClusterStoreConformance('memory', async () => {
  const kv = new MemoryKv();
  const clients: ClusterStore[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  };
  return {
    client: async () => {
      const c = new MemoryStore(kv);
      clients.push(c);
      return c;
    },
    restart: closeAll,
    destroy: closeAll,
  };
});
