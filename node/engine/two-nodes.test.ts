import { join } from 'node:path';
import { SqliteStore } from '../cluster/sqlite-store.js';
import { twoNodeCases } from './two-nodes.cases.js';

twoNodeCases('embedded SQLite', async (dir) => new SqliteStore(join(dir, 'shared.db')));
