/**
 * The persisted form of a layer's GranuleMap: an append-only log, replayed on open.
 *
 * Layout (all integers little-endian):
 *   header, 16 bytes:  "FRYMAP01" (8 bytes ASCII) | granule size u32 | reserved u32 (0)
 *   record, 24 bytes:  state u32 (0 absent, 1 data, 2 zero) | count u32 | start granule u64 | reserved u32 (0)
 *                      | crc32 of the previous 20 bytes u32
 * Records apply in order. A torn or corrupt tail (short record or bad CRC) marks the end of the log: it is the
 * part of an append that never became durable, so it is cut off on open. A log that grows past twice the records
 * its map needs is rewritten as a fresh file and renamed into place.
 */
import { constants, type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { FerryError } from '../../common/index.js';
import { fsyncDir } from './fsutil.js';
import { GranuleMap, type GranuleState, type Run } from './granule-map.js';

const MAGIC = Buffer.from('FRYMAP01', 'ascii');
const HEADER_SIZE = 16;
const RECORD_SIZE = 24;
/** Appends below this many records never trigger compaction. */
const COMPACT_MIN_RECORDS = 16_384;

function encodeHeader(granule: number): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(granule, 8);
  return b;
}

/** Records written per write while compacting: the rewrite holds this many at a time, whatever the map's size. */
const COMPACT_BATCH = 4096;

function encodeRecord(b: Buffer, o: number, r: Run): void {
  b.writeUInt32LE(r.state, o);
  b.writeUInt32LE(r.count, o + 4);
  b.writeBigUInt64LE(BigInt(r.start), o + 8);
  b.writeUInt32LE(0, o + 16);
  b.writeUInt32LE(crc32(b.subarray(o, o + 20)), o + 20);
}

function encodeRecords(runs: readonly Run[]): Buffer {
  const b = Buffer.alloc(runs.length * RECORD_SIZE);
  for (let i = 0; i < runs.length; i++) encodeRecord(b, i * RECORD_SIZE, runs[i] as Run);
  return b;
}

export class MapLog {
  private constructor(
    private readonly path: string,
    private handle: FileHandle,
    private size: number,
    private records: number,
    private readonly granule: number,
  ) {}

  /** Opens (creating when absent) the log at `path` and replays it into a new map. */
  static async open(path: string, granule: number): Promise<{ log: MapLog; map: GranuleMap }> {
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const map = new GranuleMap();
      const { size: fileSize } = await handle.stat();
      if (fileSize < HEADER_SIZE) {
        await handle.truncate(0);
        await handle.write(encodeHeader(granule), 0, HEADER_SIZE, 0);
        await handle.datasync();
        return { log: new MapLog(path, handle, HEADER_SIZE, 0, granule), map };
      }
      const header = Buffer.alloc(HEADER_SIZE);
      await handle.read(header, 0, HEADER_SIZE, 0);
      if (!header.subarray(0, 8).equals(MAGIC) || header.readUInt32LE(8) !== granule) {
        throw new FerryError('DATA_CORRUPTION', `map log ${path} has a bad header; the layer cannot be trusted`);
      }
      let pos = HEADER_SIZE;
      let records = 0;
      const buf = Buffer.alloc(RECORD_SIZE * 4096);
      outer: while (pos < fileSize) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
        const whole = Math.floor(bytesRead / RECORD_SIZE);
        for (let i = 0; i < whole; i++) {
          const o = i * RECORD_SIZE;
          if (buf.readUInt32LE(o + 20) !== crc32(buf.subarray(o, o + 20))) break outer;
          const state = buf.readUInt32LE(o);
          if (state > 2) break outer;
          map.set(Number(buf.readBigUInt64LE(o + 8)), buf.readUInt32LE(o + 4), state as GranuleState);
          pos += RECORD_SIZE;
          records++;
        }
        if (whole * RECORD_SIZE < bytesRead || bytesRead === 0) break;
      }
      if (pos < fileSize) await handle.truncate(pos);
      return { log: new MapLog(path, handle, pos, records, granule), map };
    } catch (err: unknown) {
      await handle.close();
      throw err;
    }
  }

  /** Appends runs and makes them durable. */
  async append(runs: readonly Run[]): Promise<void> {
    if (runs.length === 0) return;
    const b = encodeRecords(runs);
    await this.handle.write(b, 0, b.length, this.size);
    await this.handle.datasync();
    this.size += b.length;
    this.records += runs.length;
  }

  /**
   * Rewrites the log from `map` when it has grown well past what the map needs, COMPACT_BATCH records at a time.
   * Writes may mark the map meanwhile, so the new log can hold states that are newer than the last flush:
   * `syncData` makes the data of every write marked so far durable, and runs before the new log replaces the old.
   */
  async maybeCompact(map: GranuleMap, syncData: () => Promise<void>): Promise<void> {
    if (this.records < COMPACT_MIN_RECORDS) return;
    let needed = 0;
    for (const _run of map.presentRuns()) needed++;
    if (this.records < needed * 2) return;
    const tmp = `${this.path}.tmp`;
    const out = await open(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
    let size = HEADER_SIZE;
    try {
      await out.write(encodeHeader(this.granule), 0, HEADER_SIZE, 0);
      const batch = Buffer.alloc(COMPACT_BATCH * RECORD_SIZE);
      let n = 0;
      const writeBatch = async (): Promise<void> => {
        await out.write(batch, 0, n * RECORD_SIZE, size);
        size += n * RECORD_SIZE;
        n = 0;
      };
      for (const run of map.presentRuns()) {
        encodeRecord(batch, n * RECORD_SIZE, run);
        if (++n === COMPACT_BATCH) await writeBatch();
      }
      if (n > 0) await writeBatch();
      await syncData();
      await out.datasync();
    } catch (err: unknown) {
      await out.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await rename(tmp, this.path);
    await fsyncDir(this.path);
    await this.handle.close();
    this.handle = out;
    this.size = size;
    this.records = (size - HEADER_SIZE) / RECORD_SIZE;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
