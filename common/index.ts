export * from './errors.js';
export * from './fs.js';
export * from './network-errors.js';
export * from './size.js';
