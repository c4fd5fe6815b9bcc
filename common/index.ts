export * from './errors.js';
export * from './size.js';
