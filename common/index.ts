export * from './errors.js';
export * from './network-errors.js';
export * from './size.js';
