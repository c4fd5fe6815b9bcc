import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryProvider } from '../../test/support/memory-provider.js';
import { infoData, metaContextData, RawClient } from '../../test/support/nbd-raw-client.js';
import * as c from './constants.js';
import { NbdServer } from './index.js';

const MiB = 1024 * 1024;

describe('NBD handshake', () => {
  let provider: MemoryProvider;
  let server: NbdServer;
  let port: number;
  const clients: RawClient[] = [];
  const events: string[] = [];

  async function client(): Promise<RawClient> {
    const raw = await RawClient.connect(port);
    clients.push(raw);
    return raw;
  }

  beforeEach(async () => {
    provider = new MemoryProvider();
    server = new NbdServer(provider, { log: (event) => events.push(event) });
    ({ port } = await server.listen('127.0.0.1', 0));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((raw) => raw.close()));
    await server.close();
  });

  it('greets with NBDMAGIC, IHAVEOPT and FIXED_NEWSTYLE | NO_ZEROES', async () => {
    const raw = await client();
    const greeting = await raw.greet();
    expect(greeting.magic).toBe(c.NBD_MAGIC);
    expect(greeting.opt).toBe(c.IHAVEOPT);
    expect(greeting.flags).toBe(c.FLAG_FIXED_NEWSTYLE | c.FLAG_NO_ZEROES);
  });

  it('drops a client that sets unknown client flags', async () => {
    const raw = await client();
    await raw.greet(0x80);
    expect(await raw.closedByServer()).toBe(true);
  });

  it('drops a client whose option has a bad magic', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_LIST, Buffer.alloc(0), 0x1234n);
    expect(await raw.closedByServer()).toBe(true);
    expect(events).toContain('nbd.handshake.rejected');
  });

  it('answers an unknown option with ERR_UNSUP and keeps negotiating', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(99, Buffer.from('some data the server must skip'));
    const reply = await raw.optionReply();
    expect(reply).toMatchObject({ option: 99, type: c.REP_ERR_UNSUP });
    expect(reply.data.toString()).toMatch(/not supported/);
    raw.sendOption(c.OPT_STRUCTURED_REPLY);
    expect((await raw.optionReply()).type).toBe(c.REP_ACK);
  });

  it('refuses STARTTLS (no keys given) and too-large options, then carries on', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_STARTTLS);
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_UNSUP);
    raw.sendOption(c.OPT_INFO, Buffer.alloc(c.MAX_OPTION_LENGTH + 1));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_TOO_BIG);
    raw.sendOption(c.OPT_LIST);
    expect((await raw.optionReplies()).at(-1)?.type).toBe(c.REP_ACK);
  });

  it('lists every export with NBD_OPT_LIST, and refuses LIST with data', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_LIST);
    const replies = await raw.optionReplies();
    expect(replies.at(-1)?.type).toBe(c.REP_ACK);
    const names = replies
      .filter((r) => r.type === c.REP_SERVER)
      .map((r) => r.data.toString('utf8', 4, 4 + r.data.readUInt32BE(0)));
    expect(names.sort()).toEqual(['disk', 'disk@snap']);
    raw.sendOption(c.OPT_LIST, Buffer.from('x'));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_INVALID);
  });

  it('answers NBD_OPT_INFO for an unknown export with ERR_UNKNOWN and a message', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_INFO, infoData('nope', []));
    const reply = await raw.optionReply();
    expect(reply.type).toBe(c.REP_ERR_UNKNOWN);
    expect(reply.data.toString()).toContain('nope');
    raw.sendOption(c.OPT_GO, infoData('', []));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_UNKNOWN);
    raw.sendOption(c.OPT_GO, Buffer.from([0, 0, 0, 9, 1]));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_INVALID);
  });

  it('describes an export with NBD_OPT_INFO without opening it', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_INFO, infoData('disk@snap', [c.INFO_NAME, c.INFO_DESCRIPTION, c.INFO_BLOCK_SIZE]));
    const replies = await raw.optionReplies();
    expect(replies.at(-1)?.type).toBe(c.REP_ACK);
    const infos = new Map(replies.filter((r) => r.type === c.REP_INFO).map((r) => [r.data.readUInt16BE(0), r.data]));
    const exportInfo = infos.get(c.INFO_EXPORT) as Buffer;
    expect(Number(exportInfo.readBigUInt64BE(2))).toBe(64 * MiB);
    const flags = exportInfo.readUInt16BE(10);
    expect(flags & c.FLAG_READ_ONLY).toBe(c.FLAG_READ_ONLY);
    expect(flags & c.FLAG_CAN_MULTI_CONN).toBe(0);
    expect(flags & c.FLAG_SEND_DF).toBe(0); // no structured replies negotiated
    expect(infos.get(c.INFO_NAME)?.toString('utf8', 2)).toBe('disk@snap');
    expect(infos.get(c.INFO_DESCRIPTION)?.toString('utf8', 2)).toContain('snapshot');
    const sizes = infos.get(c.INFO_BLOCK_SIZE) as Buffer;
    expect([sizes.readUInt32BE(2), sizes.readUInt32BE(6), sizes.readUInt32BE(10)]).toEqual([1, 4096, 32 * MiB]);
    expect(provider.opened).toHaveLength(0);
  });

  it('lists and selects base:allocation only', async () => {
    const raw = await client();
    await raw.greet();
    raw.sendOption(c.OPT_SET_META_CONTEXT, metaContextData('disk', [c.BASE_ALLOCATION]));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_INVALID); // structured replies first
    raw.sendOption(c.OPT_STRUCTURED_REPLY);
    expect((await raw.optionReply()).type).toBe(c.REP_ACK);

    const contexts = async (option: number, queries: string[]) => {
      raw.sendOption(option, metaContextData('disk', queries));
      const replies = await raw.optionReplies();
      expect(replies.at(-1)?.type).toBe(c.REP_ACK);
      return replies
        .filter((r) => r.type === c.REP_META_CONTEXT)
        .map((r) => [r.data.readUInt32BE(0), r.data.toString('utf8', 4)]);
    };
    expect(await contexts(c.OPT_LIST_META_CONTEXT, [])).toEqual([[0, 'base:allocation']]);
    expect(await contexts(c.OPT_LIST_META_CONTEXT, ['base:'])).toEqual([[0, 'base:allocation']]);
    expect(await contexts(c.OPT_LIST_META_CONTEXT, ['qemu:dirty-bitmap:x'])).toEqual([]);
    expect(await contexts(c.OPT_SET_META_CONTEXT, ['base:'])).toEqual([]);
    expect(await contexts(c.OPT_SET_META_CONTEXT, ['x-foo:bar', 'base:allocation'])).toEqual([
      [c.BASE_ALLOCATION_ID, 'base:allocation'],
    ]);

    raw.sendOption(c.OPT_SET_META_CONTEXT, metaContextData('missing', ['base:allocation']));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_UNKNOWN);
    raw.sendOption(c.OPT_SET_META_CONTEXT, Buffer.from([0, 0, 0, 200]));
    expect((await raw.optionReply()).type).toBe(c.REP_ERR_INVALID);
  });

  it('refuses a second writer with ERR_POLICY and the engine message, then admits it after the first leaves', async () => {
    const first = await client();
    await first.go('disk');
    const second = await client();
    await second.greet();
    second.sendOption(c.OPT_GO, infoData('disk', []));
    const reply = await second.optionReply();
    expect(reply.type).toBe(c.REP_ERR_POLICY);
    expect(reply.data.toString()).toMatch(/already attached to another writer/);

    first.request(c.CMD_DISC, 0n, 0, 0);
    await first.closedByServer();
    expect(provider.opened[0]?.closed).toBe(true);
    second.sendOption(c.OPT_GO, infoData('disk', []));
    expect((await second.optionReplies()).at(-1)?.type).toBe(c.REP_ACK);
  });

  it('enters transmission with NBD_OPT_EXPORT_NAME, honouring NO_ZEROES', async () => {
    const withZeroes = await client();
    await withZeroes.greet(c.FLAG_C_FIXED_NEWSTYLE);
    withZeroes.sendOption(c.OPT_EXPORT_NAME, Buffer.from('disk@snap'));
    const reply = await withZeroes.reader.read(134);
    expect(Number(reply.readBigUInt64BE(0))).toBe(64 * MiB);
    expect(reply.readUInt16BE(8) & c.FLAG_READ_ONLY).toBe(c.FLAG_READ_ONLY);
    expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
    withZeroes.request(c.CMD_READ, 7n, 0, 512);
    const read = await withZeroes.simpleReply(512);
    expect(read.handle).toBe(7n);
    expect(read.error).toBe(0);

    const noZeroes = await client();
    await noZeroes.greet(c.FLAG_C_FIXED_NEWSTYLE | c.FLAG_C_NO_ZEROES);
    noZeroes.sendOption(c.OPT_EXPORT_NAME, Buffer.from('disk@snap'));
    await noZeroes.reader.read(10);
    noZeroes.request(c.CMD_FLUSH, 8n, 0, 0);
    expect((await noZeroes.simpleReply()).handle).toBe(8n);
  });

  it('ends the session on NBD_OPT_EXPORT_NAME for an unknown export, and after NBD_OPT_ABORT', async () => {
    const unknown = await client();
    await unknown.greet();
    unknown.sendOption(c.OPT_EXPORT_NAME, Buffer.from('nope'));
    expect(await unknown.closedByServer()).toBe(true);

    const abort = await client();
    await abort.greet();
    abort.sendOption(c.OPT_ABORT);
    expect((await abort.optionReply()).type).toBe(c.REP_ACK);
    expect(await abort.closedByServer()).toBe(true);
  });
});
