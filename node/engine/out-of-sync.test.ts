import { DirectConnector } from '../../test/support/direct-connector.js';
import { MemoryStore } from '../cluster/memory-store.js';
import { outOfSyncCases } from './out-of-sync.cases.js';

outOfSyncCases(
  'memory store',
  async () => new MemoryStore(),
  () => new DirectConnector(),
);
