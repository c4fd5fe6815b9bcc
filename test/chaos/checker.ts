/**
 * The chaos checker's judgement of one trial (docs/REPLICATION.md section 8), from the writers' logs and the volume
 * read back through two nodes:
 *
 * - `lost-ack` (R2, R3, F4): a block's last acknowledged write is neither there nor overwritten by a later write of
 *   the same writer (writers have blocks of their own and write one at a time, so a writer's sequence numbers order
 *   its writes to a block). A write the old coordinator acknowledged after the fence, through the pinned writer,
 *   shows up here, named with the node it went through and its times.
 * - `never-written` (R3): a block holds garbage (torn, foreign) or a value no writer sent to that block.
 * - `disagree` (R3): two reads through different nodes differ.
 *
 * A write that was sent but not acknowledged may or may not be there: either is fine, as are zeros for a block with
 * no acknowledged write.
 */
import { BLOCK_SIZE, type Decoded, decodeValue } from './value.js';
import type { WriteRecord } from './workload.js';

/** One broken rule. */
export interface Violation {
  check: 'lost-ack' | 'never-written' | 'disagree' | 'unavailable' | 'fault-error';
  block?: number;
  detail: string;
}

/** What `judge` is given. */
export interface Evidence {
  volume: string;
  /** Every write of every writer. */
  writes: readonly WriteRecord[];
  /** The blocks the writers own: 0 .. blocks-1. */
  blocks: number;
  /** The volume's first `blocks` blocks read through two nodes or more (each compared with the first). */
  reads: readonly { via: number; data: Buffer }[];
}

/** How much was written and acknowledged. */
export interface WriteTally {
  sent: number;
  replied: number;
  acked: number;
}

export function tally(writes: readonly WriteRecord[]): WriteTally {
  return {
    sent: writes.length,
    replied: writes.filter((w) => w.repliedMs !== undefined).length,
    acked: writes.filter((w) => w.ackedMs !== undefined).length,
  };
}

function describeWrite(w: WriteRecord): string {
  const replied = w.repliedMs === undefined ? 'no reply' : `replied ${w.repliedMs}ms`;
  const acked = w.ackedMs === undefined ? 'not acked' : `acked ${w.ackedMs}ms`;
  return `writer ${w.writer} seq ${w.seq} via node ${w.via} (sent ${w.invokedMs}ms, ${replied}, ${acked})`;
}

function describeFound(d: Decoded): string {
  if (d.kind === 'zero') return 'zeros';
  if (d.kind === 'garbage') return `garbage (${d.why})`;
  return `writer ${d.id.writer} seq ${d.id.seq} via node ${d.id.via}`;
}

/** Judges a trial: every violation found (none: the trial passed). */
export function judge(evidence: Evidence): Violation[] {
  const violations: Violation[] = [];
  const [first, ...others] = evidence.reads;
  if (first === undefined) return [{ check: 'unavailable', detail: 'the volume could not be read back' }];
  for (const second of others) {
    if (first.data.equals(second.data)) continue;
    let differing = 0;
    let example = -1;
    for (let b = 0; b < evidence.blocks; b++) {
      const a = first.data.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE);
      if (!a.equals(second.data.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE))) {
        differing++;
        if (example < 0) example = b;
      }
    }
    const a = decodeValue(first.data.subarray(example * BLOCK_SIZE, (example + 1) * BLOCK_SIZE));
    const b = decodeValue(second.data.subarray(example * BLOCK_SIZE, (example + 1) * BLOCK_SIZE));
    violations.push({
      check: 'disagree',
      block: example,
      detail: `${differing} blocks differ between node ${first.via} and node ${second.via}; block ${example}: ${describeFound(a)} vs ${describeFound(b)}`,
    });
  }
  // Each block's writes by writer, in sequence order.
  const byBlock = new Map<number, WriteRecord[]>();
  const sent = new Set<string>();
  for (const w of evidence.writes) {
    const list = byBlock.get(w.block) ?? [];
    list.push(w);
    byBlock.set(w.block, list);
    sent.add(`${w.writer}/${w.seq}/${w.block}`);
  }
  for (const read of evidence.reads) {
    for (let b = 0; b < evidence.blocks; b++) {
      const found = decodeValue(read.data.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE));
      const v = judgeBlock(evidence.volume, b, found, byBlock.get(b) ?? [], sent);
      if (v !== undefined) violations.push({ ...v, detail: `read through node ${read.via}: ${v.detail}` });
    }
  }
  return violations;
}

function judgeBlock(
  volume: string,
  block: number,
  found: Decoded,
  writes: readonly WriteRecord[],
  sent: ReadonlySet<string>,
): Violation | undefined {
  if (found.kind === 'garbage') return { check: 'never-written', block, detail: `block ${block} holds ${found.why}` };
  if (found.kind === 'value') {
    const id = found.id;
    if (id.volume !== volume || id.block !== block || !sent.has(`${id.writer}/${id.seq}/${id.block}`)) {
      return {
        check: 'never-written',
        block,
        detail: `block ${block} holds a value never sent there (volume ${id.volume}, block ${id.block}, writer ${id.writer}, seq ${id.seq})`,
      };
    }
  }
  // The last acknowledged write of each writer to this block must be there, or a later write of that writer.
  const lastAcked = new Map<number, WriteRecord>();
  for (const w of writes) {
    if (w.ackedMs === undefined) continue;
    const prev = lastAcked.get(w.writer);
    if (prev === undefined || w.seq > prev.seq) lastAcked.set(w.writer, w);
  }
  if (lastAcked.size > 1) {
    // Writers own their blocks; two writers on one block cannot be judged by sequence.
    return { check: 'never-written', block, detail: `block ${block} was written by ${lastAcked.size} writers` };
  }
  const [acked] = lastAcked.values();
  if (acked === undefined) return undefined;
  const present = found.kind === 'value' && found.id.writer === acked.writer && found.id.seq >= acked.seq;
  if (present) return undefined;
  return {
    check: 'lost-ack',
    block,
    detail: `block ${block} lost ${describeWrite(acked)}; it holds ${describeFound(found)}`,
  };
}
