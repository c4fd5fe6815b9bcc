import { join } from 'node:path';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import { clusterCases } from './cluster.cases.js';

clusterCases(
  'embedded SQLite',
  async (dir) => new SqliteStore(join(dir, 'shared.db')),
  () => new DirectConnector(),
);
