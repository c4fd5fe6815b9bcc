/**
 * Fixed newstyle handshake and option haggling (layouts in constants.ts). Ends in transmission with an opened device,
 * or with the session over (NBD_OPT_ABORT, a protocol violation, or an NBD_OPT_EXPORT_NAME that cannot be served).
 */
import type { Socket } from 'node:net';
import type { BlockDevice, ExportProvider } from '../engine/types.js';
import * as c from './constants.js';
import { messageOf, optionErrorFor } from './errors.js';
import { blockSizes, describe, type ExportShape, transmissionFlags } from './export-info.js';
import { matchContexts, parseMetaContextRequest } from './meta-context.js';
import type { SocketReader } from './socket-reader.js';
import * as wire from './wire.js';

export interface HandshakeContext {
  socket: Socket;
  reader: SocketReader;
  provider: ExportProvider;
  maxPayload: number;
  log: (event: string, fields: Record<string, unknown>) => void;
  shuttingDown: () => boolean;
}

/** The outcome of a handshake that entered transmission. */
export interface Negotiated {
  exportName: string;
  device: BlockDevice;
  structured: boolean;
  /** Whether `base:allocation` was selected for this export (NBD_CMD_BLOCK_STATUS allowed). */
  baseAllocation: boolean;
}

interface State {
  noZeroes: boolean;
  structured: boolean;
  /** Export name of the last NBD_OPT_SET_META_CONTEXT that selected base:allocation. */
  metaExport: string | undefined;
}

/** Runs the handshake. Resolves undefined when the session ended; rejects when the stream closed under it. */
export async function negotiate(ctx: HandshakeContext): Promise<Negotiated | undefined> {
  const greeting = Buffer.allocUnsafe(18);
  greeting.writeBigUInt64BE(c.NBD_MAGIC, 0);
  greeting.writeBigUInt64BE(c.IHAVEOPT, 8);
  greeting.writeUInt16BE(c.FLAG_FIXED_NEWSTYLE | c.FLAG_NO_ZEROES, 16);
  ctx.socket.write(greeting);

  const clientFlags = (await ctx.reader.read(4)).readUInt32BE(0);
  if ((clientFlags & ~(c.FLAG_C_FIXED_NEWSTYLE | c.FLAG_C_NO_ZEROES)) !== 0) {
    ctx.log('nbd.handshake.rejected', { reason: 'unknown client flags', client_flags: clientFlags });
    return undefined;
  }
  // Fixed newstyle is honoured even when the client did not set the bit (the spec allows it).
  const state: State = { noZeroes: (clientFlags & c.FLAG_C_NO_ZEROES) !== 0, structured: false, metaExport: undefined };

  for (;;) {
    const header = await ctx.reader.read(c.OPTION_HEADER_SIZE);
    if (header.readBigUInt64BE(0) !== c.IHAVEOPT) {
      ctx.log('nbd.handshake.rejected', { reason: 'bad option magic' });
      return undefined;
    }
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > c.MAX_OPTION_LENGTH) {
      if (option === c.OPT_EXPORT_NAME) return undefined;
      await ctx.reader.skip(length);
      reply(ctx, option, c.REP_ERR_TOO_BIG, `option data of ${length} bytes is too large`);
      continue;
    }
    const data = await ctx.reader.read(length);
    const done = await handleOption(ctx, state, option, data);
    if (done !== 'continue') return done;
  }
}

async function handleOption(
  ctx: HandshakeContext,
  state: State,
  option: number,
  data: Buffer,
): Promise<Negotiated | undefined | 'continue'> {
  if (ctx.shuttingDown() && option !== c.OPT_ABORT) {
    if (option === c.OPT_EXPORT_NAME) return undefined;
    reply(ctx, option, c.REP_ERR_SHUTDOWN, 'the server is shutting down');
    return 'continue';
  }
  switch (option) {
    case c.OPT_EXPORT_NAME:
      return exportName(ctx, state, data.toString('utf8'));
    case c.OPT_ABORT:
      ctx.socket.end(wire.optionReply(option, c.REP_ACK));
      return undefined;
    case c.OPT_LIST:
      await list(ctx, data);
      return 'continue';
    case c.OPT_STARTTLS:
      reply(ctx, option, c.REP_ERR_UNSUP, 'TLS is not supported by this server');
      return 'continue';
    case c.OPT_INFO:
    case c.OPT_GO:
      return infoOrGo(ctx, state, option, data);
    case c.OPT_STRUCTURED_REPLY:
      if (data.length !== 0) reply(ctx, option, c.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      else {
        state.structured = true;
        reply(ctx, option, c.REP_ACK);
      }
      return 'continue';
    case c.OPT_LIST_META_CONTEXT:
    case c.OPT_SET_META_CONTEXT:
      await metaContext(ctx, state, option, data);
      return 'continue';
    default:
      reply(ctx, option, c.REP_ERR_UNSUP, `option ${option} is not supported by this server`);
      return 'continue';
  }
}

function reply(ctx: HandshakeContext, option: number, type: number, message?: string): void {
  ctx.socket.write(wire.optionReply(option, type, message === undefined ? undefined : wire.protocolString(message)));
}

async function exportName(ctx: HandshakeContext, state: State, name: string): Promise<Negotiated | undefined> {
  let device: BlockDevice;
  try {
    device = await ctx.provider.openExport(name);
  } catch (err: unknown) {
    // NBD_OPT_EXPORT_NAME cannot carry an error: the spec requires ending the session.
    ctx.log('nbd.export.refused', { export: name, error: messageOf(err) });
    return undefined;
  }
  const out = Buffer.alloc(state.noZeroes ? 10 : 134);
  wire.writeUInt64(out, device.size, 0);
  out.writeUInt16BE(transmissionFlags(device, state.structured), 8);
  ctx.socket.write(out);
  return { exportName: name, device, structured: state.structured, baseAllocation: state.metaExport === name };
}

async function list(ctx: HandshakeContext, data: Buffer): Promise<void> {
  if (data.length !== 0) return reply(ctx, c.OPT_LIST, c.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
  let names: string[];
  try {
    names = await ctx.provider.listExports();
  } catch (err: unknown) {
    ctx.log('nbd.list.failed', { error: messageOf(err) });
    return reply(ctx, c.OPT_LIST, optionErrorFor(err, ctx.shuttingDown()), messageOf(err));
  }
  ctx.socket.cork();
  for (const name of names) ctx.socket.write(wire.optionReply(c.OPT_LIST, c.REP_SERVER, wire.serverEntry(name)));
  reply(ctx, c.OPT_LIST, c.REP_ACK);
  ctx.socket.uncork();
}

/** NBD_OPT_INFO / NBD_OPT_GO data: name length (4) | name | request count (2) | info types (2 each). */
function parseInfoRequest(data: Buffer): { name: string; requests: number[] } | undefined {
  if (data.length < 6) return undefined;
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 6) return undefined;
  const count = data.readUInt16BE(4 + nameLength);
  if (4 + nameLength + 2 + 2 * count !== data.length) return undefined;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(6 + nameLength + 2 * i));
  return { name: data.toString('utf8', 4, 4 + nameLength), requests };
}

async function infoOrGo(
  ctx: HandshakeContext,
  state: State,
  option: number,
  data: Buffer,
): Promise<Negotiated | undefined | 'continue'> {
  const request = parseInfoRequest(data);
  if (!request) {
    reply(ctx, option, c.REP_ERR_INVALID, 'malformed NBD_OPT_INFO/NBD_OPT_GO data');
    return 'continue';
  }
  const { name, requests } = request;
  if (name === '') {
    reply(ctx, option, c.REP_ERR_UNKNOWN, 'this server has no default export: name one (nbdinfo --list shows them)');
    return 'continue';
  }
  let shape: ExportShape;
  let device: BlockDevice | undefined;
  try {
    // NBD_OPT_INFO must not open the export (that would take the writer slot); NBD_OPT_GO opens it.
    if (option === c.OPT_GO) shape = device = await ctx.provider.openExport(name);
    else shape = await ctx.provider.describeExport(name);
  } catch (err: unknown) {
    ctx.log('nbd.export.refused', { export: name, option: option === c.OPT_GO ? 'go' : 'info', error: messageOf(err) });
    reply(ctx, option, optionErrorFor(err, ctx.shuttingDown()), messageOf(err));
    return 'continue';
  }
  const sizes = blockSizes(shape, ctx.maxPayload);
  const infos = [
    wire.infoExport(shape.size, transmissionFlags(shape, state.structured)),
    wire.infoBlockSize(sizes.minimum, sizes.preferred, sizes.maximum),
  ];
  if (requests.includes(c.INFO_NAME)) infos.push(wire.infoString(c.INFO_NAME, name));
  if (requests.includes(c.INFO_DESCRIPTION)) infos.push(wire.infoString(c.INFO_DESCRIPTION, describe(name, shape)));
  ctx.socket.cork();
  for (const info of infos) ctx.socket.write(wire.optionReply(option, c.REP_INFO, info));
  reply(ctx, option, c.REP_ACK);
  ctx.socket.uncork();
  if (!device) return 'continue';
  return { exportName: name, device, structured: state.structured, baseAllocation: state.metaExport === name };
}

async function metaContext(ctx: HandshakeContext, state: State, option: number, data: Buffer): Promise<void> {
  const listing = option === c.OPT_LIST_META_CONTEXT;
  // SET replaces the selection even when it fails.
  if (!listing) state.metaExport = undefined;
  if (!listing && !state.structured) {
    return reply(ctx, option, c.REP_ERR_INVALID, 'negotiate structured replies before NBD_OPT_SET_META_CONTEXT');
  }
  const request = parseMetaContextRequest(data);
  if (!request) return reply(ctx, option, c.REP_ERR_INVALID, 'malformed meta context request');
  try {
    await ctx.provider.describeExport(request.exportName);
  } catch (err: unknown) {
    return reply(ctx, option, optionErrorFor(err, ctx.shuttingDown()), messageOf(err));
  }
  const contexts = matchContexts(request.queries, listing);
  ctx.socket.cork();
  for (const name of contexts) {
    const id = listing ? 0 : c.BASE_ALLOCATION_ID;
    ctx.socket.write(wire.optionReply(option, c.REP_META_CONTEXT, wire.metaContextEntry(id, name)));
  }
  reply(ctx, option, c.REP_ACK);
  ctx.socket.uncork();
  if (!listing && contexts.length > 0) state.metaExport = request.exportName;
}
