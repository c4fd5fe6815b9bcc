/**
 * Fixed newstyle handshake and option haggling (layouts in constants.ts). Ends in transmission with an opened device,
 * or with the session over (NBD_OPT_ABORT, a protocol violation, a failed TLS handshake, or an NBD_OPT_EXPORT_NAME
 * that cannot be served). NBD_OPT_STARTTLS moves the connection to TLS-PSK (tls.ts); what a connection may list and
 * open depends on its identity (access.ts).
 */
import type { Socket } from 'node:net';
import { isFerryError } from '../../common/index.js';
import type { BlockDevice, ExportProvider } from '../engine/types.js';
import type { NbdAuthorize, NbdIdentity, NbdTlsMode } from './access.js';
import * as c from './constants.js';
import { messageOf, NbdRefusal, optionErrorFor } from './errors.js';
import { blockSizes, describe, type ExportShape, transmissionFlags } from './export-info.js';
import { matchContexts, parseMetaContextRequest } from './meta-context.js';
import { SocketReader } from './socket-reader.js';
import { startTls } from './tls.js';
import * as wire from './wire.js';

export interface HandshakeContext {
  /** The connection's socket; replaced by its TLS socket after NBD_OPT_STARTTLS. */
  socket: Socket;
  /** Reads `socket`; replaced with it. */
  reader: SocketReader;
  provider: ExportProvider;
  maxPayload: number;
  log: (event: string, fields: Record<string, unknown>) => void;
  shuttingDown: () => boolean;
  /** The TLS policy; `pskKey` undefined means TLS is not offered. */
  tls: { mode: NbdTlsMode; pskKey: ((identity: string) => Buffer | undefined) | undefined };
  /** The identity of the connection before TLS (from its address and the mode). */
  plaintext: NbdIdentity;
  /** Decides for `psk` identities; without it they may open everything. */
  authorize: NbdAuthorize | undefined;
  /** Called once the connection runs over TLS, with the new socket and reader. */
  upgraded: (socket: Socket, reader: SocketReader) => void;
  /** The reader's buffer limit, for the reader of the TLS socket. */
  readerHighWater: number;
  /** What opened the device, as the engine records it (the client's address). */
  holder: string;
}

/** The outcome of a handshake that entered transmission. */
export interface Negotiated {
  exportName: string;
  device: BlockDevice;
  structured: boolean;
  /** Whether `base:allocation` was selected for this export (NBD_CMD_BLOCK_STATUS allowed). */
  baseAllocation: boolean;
  identity: NbdIdentity;
}

interface State {
  noZeroes: boolean;
  structured: boolean;
  /** Export name of the last NBD_OPT_SET_META_CONTEXT that selected base:allocation. */
  metaExport: string | undefined;
  /** Who the connection is: its plaintext identity, then its PSK identity after TLS. */
  identity: NbdIdentity;
  tls: boolean;
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
  const state: State = {
    noZeroes: (clientFlags & c.FLAG_C_NO_ZEROES) !== 0,
    structured: false,
    metaExport: undefined,
    identity: ctx.plaintext,
    tls: false,
  };

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
  if (!state.tls && ctx.tls.mode === 'require' && option !== c.OPT_STARTTLS && option !== c.OPT_ABORT) {
    // FORCEDTLS: nothing but STARTTLS (or ABORT) before TLS; NBD_OPT_EXPORT_NAME cannot carry an error.
    if (option === c.OPT_EXPORT_NAME) {
      ctx.log('nbd.handshake.rejected', { reason: 'TLS required', option });
      return undefined;
    }
    reply(ctx, option, c.REP_ERR_TLS_REQD, TLS_REQUIRED);
    return 'continue';
  }
  switch (option) {
    case c.OPT_EXPORT_NAME:
      return exportName(ctx, state, data.toString('utf8'));
    case c.OPT_ABORT:
      ctx.socket.end(wire.optionReply(option, c.REP_ACK));
      return undefined;
    case c.OPT_LIST:
      await list(ctx, state, data);
      return 'continue';
    case c.OPT_STARTTLS:
      return startTlsOption(ctx, state, data);
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
    device = await open(ctx, state, name);
  } catch (err: unknown) {
    // NBD_OPT_EXPORT_NAME cannot carry an error: the spec requires ending the session.
    ctx.log('nbd.export.refused', { export: name, error: messageOf(err) });
    return undefined;
  }
  const out = Buffer.alloc(state.noZeroes ? 10 : 134);
  wire.writeUInt64(out, device.size, 0);
  out.writeUInt16BE(transmissionFlags(device, state.structured), 8);
  ctx.socket.write(out);
  return negotiated(state, name, device);
}

function negotiated(state: State, exportName: string, device: BlockDevice): Negotiated {
  const { structured, identity } = state;
  return { exportName, device, structured, baseAllocation: state.metaExport === exportName, identity };
}

const TLS_REQUIRED =
  'this server requires TLS: connect with nbds://USER@HOST:PORT/EXPORT?tls-psk-file=FILE (ferry auth nbd-key writes FILE)';

/** The refusal of everything to an anonymous (plaintext, not local) connection. */
function anonymousRefusal(): NbdRefusal {
  return new NbdRefusal(c.REP_ERR_TLS_REQD, TLS_REQUIRED);
}

/**
 * The shape of export `name` if the connection's identity may open it (as a writer when it is writable); rejects
 * with the reason otherwise.
 */
async function permitted(ctx: HandshakeContext, state: State, name: string): Promise<ExportShape> {
  const { identity } = state;
  if (identity.kind === 'anonymous') throw anonymousRefusal();
  const shape = await ctx.provider.describeExport(name);
  if (identity.kind === 'psk' && ctx.authorize) await ctx.authorize(identity, name, !shape.readOnly);
  return shape;
}

/** Opens export `name` for the connection's identity. */
async function open(ctx: HandshakeContext, state: State, name: string): Promise<BlockDevice> {
  await permitted(ctx, state, name);
  try {
    return await ctx.provider.openExport(name, { holder: ctx.holder });
  } catch (err: unknown) {
    // The export exists (described above): a NOT_FOUND now is about something else (e.g. a destroyed KEK).
    if (isFerryError(err) && err.code === 'NOT_FOUND') throw new NbdRefusal(c.REP_ERR_POLICY, err.message);
    throw err;
  }
}

async function startTlsOption(ctx: HandshakeContext, state: State, data: Buffer): Promise<'continue' | undefined> {
  const option = c.OPT_STARTTLS;
  if (data.length !== 0) {
    reply(ctx, option, c.REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
    return 'continue';
  }
  if (state.tls) {
    reply(ctx, option, c.REP_ERR_INVALID, 'TLS is already in use on this connection');
    return 'continue';
  }
  const { pskKey } = ctx.tls;
  if (ctx.tls.mode === 'off' || pskKey === undefined) {
    reply(ctx, option, c.REP_ERR_UNSUP, 'TLS is not offered by this server (its NBD TLS mode is off)');
    return 'continue';
  }
  if (ctx.reader.available > 0) {
    // The client must wait for our reply before its TLS hello: bytes already here are a protocol violation.
    ctx.log('nbd.handshake.rejected', { reason: 'data after NBD_OPT_STARTTLS before its reply' });
    return undefined;
  }
  const raw = ctx.socket;
  // The plaintext reader lets go first (so it cannot swallow the client's TLS hello), then the ACK goes out, all
  // of it, before the TLS layer takes the socket over.
  ctx.reader.detach();
  const sent = await new Promise<boolean>((resolve) =>
    raw.write(wire.optionReply(option, c.REP_ACK), (err) => resolve(err === undefined || err === null)),
  );
  if (!sent) {
    raw.destroy();
    return undefined;
  }
  let upgraded: Awaited<ReturnType<typeof startTls>>;
  try {
    upgraded = await startTls(raw, pskKey);
  } catch (err: unknown) {
    ctx.log('nbd.tls.failed', { error: messageOf(err) });
    raw.destroy();
    return undefined;
  }
  const { socket, identity } = upgraded;
  socket.once('close', () => raw.destroy());
  const reader = new SocketReader(socket, ctx.readerHighWater);
  ctx.socket = socket;
  ctx.reader = reader;
  ctx.upgraded(socket, reader);
  // The spec: after STARTTLS the server forgets what was negotiated before it.
  state.tls = true;
  state.structured = false;
  state.metaExport = undefined;
  state.identity = { kind: 'psk', name: identity };
  ctx.log('nbd.tls.established', { identity, protocol: socket.getProtocol(), cipher: socket.getCipher().name });
  return 'continue';
}

/** The exports the connection's identity may open. */
async function visibleExports(ctx: HandshakeContext, state: State): Promise<string[]> {
  if (state.identity.kind === 'anonymous') throw anonymousRefusal();
  const names = await ctx.provider.listExports();
  if (state.identity.kind !== 'psk' || !ctx.authorize) return names;
  const allowed = await Promise.all(
    names.map((name) =>
      permitted(ctx, state, name).then(
        () => true,
        () => false,
      ),
    ),
  );
  return names.filter((_name, i) => allowed[i]);
}

async function list(ctx: HandshakeContext, state: State, data: Buffer): Promise<void> {
  if (data.length !== 0) return reply(ctx, c.OPT_LIST, c.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
  let names: string[];
  try {
    names = await visibleExports(ctx, state);
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
    if (option === c.OPT_GO) shape = device = await open(ctx, state, name);
    else shape = await permitted(ctx, state, name);
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
  return negotiated(state, name, device);
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
    await permitted(ctx, state, request.exportName);
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
