import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  formatLabels,
  formatSize,
  parseHostPort,
  parseLabel,
  parseSize,
  parseVolumeSize,
  renderTable,
} from '../cli/index.js';

describe('parseSize', () => {
  it.each([
    ['4096', 4096],
    ['4096B', 4096],
    ['10G', 10 * 1024 ** 3],
    ['10g', 10 * 1024 ** 3],
    ['10Gi', 10 * 1024 ** 3],
    ['10GiB', 10 * 1024 ** 3],
    ['10GB', 10 * 1024 ** 3],
    ['10 GiB', 10 * 1024 ** 3],
    ['1T', 1024 ** 4],
    ['512M', 512 * 1024 ** 2],
    ['64k', 65536],
    ['1.5G', 1.5 * 1024 ** 3],
    ['1P', 1024 ** 5],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'G', '10X', '-1G', '1.5', '10iB', 'ten', '1e3', '0.1'])('rejects %j as a usage error', (text) => {
    expect(() => parseSize(text)).toThrow(InvalidArgumentError);
  });
});

describe('parseVolumeSize', () => {
  it('takes sizes from 4 KiB to 64 TiB in whole 4 KiB blocks', () => {
    expect(parseVolumeSize('4096')).toBe(4096);
    expect(parseVolumeSize('64T')).toBe(64 * 1024 ** 4);
  });

  it.each([
    ['100P', '"100P" is above the largest size allowed, 64 TiB'],
    ['65T', '"65T" is above the largest size allowed, 64 TiB'],
    ['1.5k', '"1.5k" is not a whole number of 4 KiB blocks'],
    ['0', '"0" is empty; give a size of at least 4 KiB'],
  ])('%s: %s', (text, message) => {
    expect(() => parseVolumeSize(text)).toThrow(new InvalidArgumentError(message));
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [4096, '4 KiB'],
    [10 * 1024 ** 3, '10 GiB'],
    [1.5 * 1024 ** 2, '1.5 MiB'],
    [1024 ** 4, '1 TiB'],
    [64 * 1024 ** 4, '64 TiB'],
    [1024 ** 5, '1 PiB'],
  ])('%d bytes is %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});

describe('parseHostPort', () => {
  it('parses IPv4, names and bracketed IPv6', () => {
    expect(parseHostPort('127.0.0.1:9001')).toEqual({ host: '127.0.0.1', port: 9001 });
    expect(parseHostPort('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseHostPort('[::1]:10809')).toEqual({ host: '::1', port: 10809 });
  });

  it.each(['9001', '127.0.0.1', '127.0.0.1:70000', '::1:9001', 'host:port'])('rejects %j', (text) => {
    expect(() => parseHostPort(text)).toThrow(InvalidArgumentError);
  });
});

describe('labels and tables', () => {
  it('collects repeated --label values', () => {
    expect(parseLabel('b=2', parseLabel('a=1'))).toEqual({ a: '1', b: '2' });
    expect(parseLabel('empty=')).toEqual({ empty: '' });
    expect(() => parseLabel('novalue')).toThrow(InvalidArgumentError);
    expect(() => parseLabel('=x')).toThrow(InvalidArgumentError);
    expect(formatLabels({})).toBe('-');
    expect(formatLabels({ a: '1', b: '2' })).toBe('a=1,b=2');
  });

  it('pads columns to the widest cell', () => {
    expect(
      renderTable(
        ['ID', 'NAME'],
        [
          ['1', 'long-name'],
          ['22', 'x'],
        ],
      ),
    ).toBe(['ID  NAME', '1   long-name', '22  x'].join('\n'));
  });
});
