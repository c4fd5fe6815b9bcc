/**
 * The face of the `ferry` command for other folders (its tests): parsing and formatting of what users type and read,
 * and the shapes of `ferry status --json` and `ferry node list --json`. The command itself starts from cli/main.ts.
 */
export type { NodeView } from './commands/cluster.js';
export type { NodeStatusReport } from './commands/status.js';
export {
  formatLabels,
  formatSize,
  parseHostPort,
  parseLabel,
  parseSize,
  parseVolumeSize,
  renderTable,
} from './format.js';
