/**
 * The face of the `ferry` command for other folders (its tests): parsing and formatting of what users type and read,
 * and the shape of `ferry status --json`. The command itself starts from cli/main.ts.
 */
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
