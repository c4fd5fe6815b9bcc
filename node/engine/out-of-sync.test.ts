import { MemoryStore } from '../cluster/memory-store.js';
import { outOfSyncCases } from './out-of-sync.cases.js';

outOfSyncCases('memory store', async () => new MemoryStore());
