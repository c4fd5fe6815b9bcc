import { join } from 'node:path';
import { SqliteStore } from '../store/sqlite-store.js';
import { twoNodeCases } from './two-nodes.cases.js';

twoNodeCases('embedded SQLite', async (dir) => new SqliteStore(join(dir, 'shared.db')));
