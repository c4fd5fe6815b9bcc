/**
 * The AWS Lambda entry point (`handler`): API Gateway HTTP API (payload v2) and REST API (v1) events, and ALB
 * events, through Hono's aws-lambda adapter. The app is built once per cold start from the environment (see
 * api/lambda/serverless-app.ts and docs/API.md); a bad configuration answers every request 503 naming the variable.
 */
import { Hono } from 'hono';
import { handle, type LambdaContext, type LambdaEvent } from 'hono/aws-lambda';
import { FerryError, toFerryError } from '../common/index.js';
import { errorBody } from './errors.js';
import { createServerlessApp, serverlessOptionsFromEnv } from './lambda/serverless-app.js';

type Handler = ReturnType<typeof handle>;
/** What API Gateway gets back. */
export type LambdaResult = Awaited<ReturnType<Handler>>;

/** An app that answers every request with the start-up error (so the caller sees why, not a bare 502). */
function failedApp(err: unknown): Hono {
  const ferry = toFerryError(err, 'the serverless handler failed to start');
  const shown = new FerryError('UNAVAILABLE', `the serverless handler is misconfigured: ${ferry.message}`, {
    ...(ferry.field !== undefined && { field: ferry.field }),
  });
  const app = new Hono();
  app.all('*', (c) => c.json(errorBody(shown), 503));
  return app;
}

let ready: Promise<Handler> | undefined;

async function build(): Promise<Handler> {
  try {
    const { app } = await createServerlessApp(serverlessOptionsFromEnv(process.env));
    return handle(app);
  } catch (err: unknown) {
    process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'serverless start failed', error: String(err) })}\n`);
    // Build again on the next request: the cause may be passing (a key provider that did not answer).
    ready = undefined;
    return handle(failedApp(err));
  }
}

/** The Lambda handler. */
export async function handler(event: LambdaEvent, context?: LambdaContext): Promise<LambdaResult> {
  ready ??= build();
  const handleEvent = await ready;
  return handleEvent(event, context);
}
