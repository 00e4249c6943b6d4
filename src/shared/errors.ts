/**
 * Every error Nimbus reports carries a stable string code, an HTTP status for when it
 * crosses HTTP, and a hint that tells the user what to do. docs/errors.md lists every
 * code; test/errors-doc.test.ts keeps that list complete.
 *
 * @example
 *   throw new NimbusError('NIMBUS_FUNCTION_NOT_FOUND', `function "${name}" does not exist`);
 */
export const ERROR_CODES = {
  NIMBUS_AUTH_REQUIRED: { status: 401, hint: 'send the admin token as "Authorization: Bearer <token>"; `nimbus up` printed where it is stored' },
  NIMBUS_AUTH_INVALID: { status: 401, hint: 'the token does not match; read it again from <data-dir>/admin-token or NIMBUS_TOKEN' },
  NIMBUS_HOST_NOT_ALLOWED: {
    status: 421,
    hint: 'the admin API answers only to its own address, localhost, 127.0.0.1 and [::1]; use the URL `nimbus up` printed, or start it with `--admin-host <name>`',
  },
  NIMBUS_NOT_FOUND: { status: 404, hint: 'check the path against docs/admin-api.md' },
  NIMBUS_METHOD_NOT_ALLOWED: { status: 405, hint: 'check the method against docs/admin-api.md' },
  NIMBUS_INVALID_NAME: { status: 400, hint: 'use 1-63 characters: lower-case letters, digits and "-", starting with a letter and not ending with "-"' },
  NIMBUS_INVALID_MANIFEST: { status: 400, hint: 'fix the fields listed in details; docs/manifest.md describes each one' },
  NIMBUS_NAME_MISMATCH: { status: 400, hint: 'make the manifest name match the name in the URL, or leave it out' },
  NIMBUS_INVALID_BUNDLE: { status: 400, hint: 'upload a zip whose entries use relative paths without "..", built by `nimbus deploy`' },
  NIMBUS_BUNDLE_TOO_LARGE: { status: 413, hint: 'keep the zip under 50 MB and its unpacked contents under 250 MB' },
  NIMBUS_UNSUPPORTED_MEDIA_TYPE: { status: 415, hint: 'send the bundle with "Content-Type: application/zip"' },
  NIMBUS_INVALID_REQUEST: { status: 400, hint: 'check the request against docs/admin-api.md' },
  NIMBUS_FUNCTION_NOT_FOUND: { status: 404, hint: 'deploy it with `nimbus deploy`, or list functions with `nimbus ls`' },
  NIMBUS_PAYLOAD_TOO_LARGE: { status: 413, hint: 'request bodies are limited to 6 MB; send large data by reference' },
  NIMBUS_TOO_MANY_REQUESTS: { status: 429, hint: 'the function is at its scale.max with a full queue; retry after the Retry-After delay or raise scale.max' },
  NIMBUS_INVOCATION_NOT_FOUND: { status: 404, hint: 'check the id from the 202 response; finished records are kept for 24 h' },
  NIMBUS_KEY_NOT_FOUND: { status: 404, hint: 'the key was never written, was deleted, or expired; list keys with `nimbus kv ls <namespace>`' },
  NIMBUS_OBJECT_NOT_FOUND: { status: 404, hint: 'no such object; list the bucket with `nimbus bucket ls <bucket>`' },
  NIMBUS_RANGE_NOT_SATISFIABLE: { status: 416, hint: 'ask for a range inside the object: Content-Range says its size (bytes */<size>)' },
  NIMBUS_TOPIC_NOT_FOUND: { status: 404, hint: 'no function subscribes to the topic; add it under triggers.topics in a nimbus.yaml and deploy' },
  NIMBUS_UNAUTHORIZED_BINDING: { status: 403, hint: 'the function can reach only the KV namespaces, buckets and topics bound in its nimbus.yaml' },
  NIMBUS_CALLBACK_REFUSED: {
    status: 400,
    hint: 'callbacks may reach public addresses only; use a public URL, or have the operator allow the target with `nimbus up --callback-allow <cidr>`',
  },
  NIMBUS_QUEUE_FULL: { status: 429, hint: 'too many events are waiting; retry after the Retry-After delay, or let the backlog drain' },
  NIMBUS_TOO_MANY_CONNECTIONS: {
    status: 503,
    hint: 'close idle connections or reuse fewer at once; an operator can raise `nimbus up --max-connections-per-client` (e.g. behind a proxy)',
  },
  NIMBUS_SHUTTING_DOWN: { status: 503, hint: 'the platform is draining; retry against a running platform' },
  NIMBUS_FUNCTION_TIMEOUT: { status: 504, hint: 'the function ran past its timeout; raise `timeout` in nimbus.yaml or make it faster' },
  NIMBUS_MEMORY_LIMIT: { status: 502, hint: 'the instance used more than its memory limit; raise `memory` in nimbus.yaml or use less' },
  NIMBUS_FUNCTION_ERROR: { status: 500, hint: 'the function threw; see `nimbus logs <name>` for the stack' },
  NIMBUS_UNHANDLED_REJECTION: { status: 500, hint: 'a promise rejected with nobody handling it; await it or add .catch()' },
  NIMBUS_INSTANCE_EXITED: { status: 502, hint: 'the instance process exited while handling the request (process.exit or a crash); see `nimbus logs <name>`' },
  NIMBUS_INVALID_RESPONSE: { status: 502, hint: 'return a Response (Web-standard style) or {statusCode, headers, body} (Lambda style)' },
  NIMBUS_LOAD_FAILED: { status: 502, hint: 'the function failed while loading; fix the error shown and redeploy' },
  NIMBUS_HANDLER_NOT_FOUND: { status: 502, hint: 'export `default { fetch }` or the handler named in nimbus.yaml (e.g. handler: index.handler)' },
  NIMBUS_BUILD_FAILED: { status: 400, hint: 'fix the build errors shown, then run `nimbus deploy` again' },
  NIMBUS_ALREADY_RUNNING: { status: 409, hint: 'another `nimbus up` uses this data dir; stop it or pass a different --data-dir' },
  NIMBUS_PLATFORM_UNREACHABLE: { status: 503, hint: 'start the platform with `nimbus up`, or point --url / NIMBUS_URL at a running one' },
  NIMBUS_INVALID_ARGUMENT: { status: 400, hint: 'run `nimbus help <command>` for the accepted flags' },
  NIMBUS_INVALID_KEY: { status: 400, hint: 'use a non-empty key without NUL characters, at most 512 bytes of UTF-8 for a KV key and 1024 for an object key' },
  NIMBUS_SANDBOX_FAILED: {
    status: 503,
    hint: "the platform could not set up the instance's sandbox; the platform's log says why, and `nimbus up` printed what the sandbox holds here",
  },
  NIMBUS_SANDBOX_UNAVAILABLE: {
    status: 503,
    hint: 'install bubblewrap (and slirp4netns for outbound network), or bind the platform to 127.0.0.1; docs/security.md describes --insecure-no-sandbox',
  },
  NIMBUS_INVALID_SECRET: {
    status: 400,
    hint: 'name a secret like an env variable (letters, digits and _, not starting with a digit or NIMBUS_); give it a non-empty UTF-8 value without NUL characters; at most 64 per function',
  },
  NIMBUS_SECRET_TOO_LARGE: {
    status: 413,
    hint: 'a secret value is at most 5120 bytes; keep large data in a bucket and put only its key or a credential in the secret',
  },
  NIMBUS_SECRET_NOT_FOUND: { status: 404, hint: "list the function's secrets with `nimbus secret ls <function>`" },
  NIMBUS_SECRET_CONFLICT: {
    status: 409,
    hint: 'a name is either an env variable or binding in nimbus.yaml or a secret, not both: rename one, or remove it from env (or `nimbus secret rm`) first',
  },
  NIMBUS_THREAD_ISOLATION_DISABLED: {
    status: 403,
    hint: 'thread isolation is for trusted code only and off by default: remove `isolation: thread` (process isolation is the default), or start the platform with `nimbus up --allow-thread-isolation`',
  },
  NIMBUS_INTERNAL: { status: 500, hint: 'this is a bug in Nimbus; the platform log has details' },
} as const satisfies Record<string, { status: number; hint: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class NimbusError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly hint: string;
  readonly details: unknown;
  /** Extra response headers when this error crosses HTTP (e.g. Allow on a 405). */
  readonly headers: Readonly<Record<string, string>>;
  /** A function's own stack, for APIs that hand it to an authenticated caller (Lambda Invoke); never in the public error body. */
  readonly functionStack: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; hint?: string; cause?: unknown; headers?: Record<string, string>; functionStack?: string; status?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NimbusError';
    this.code = code;
    // A code keeps its meaning everywhere; where it happens may change the status (a load error is 502 on invoke, 422 on deploy).
    this.status = options.status ?? ERROR_CODES[code].status;
    this.hint = options.hint ?? ERROR_CODES[code].hint;
    this.details = options.details;
    this.headers = options.headers ?? {};
    this.functionStack = options.functionStack;
  }

  toJSON(requestId?: string): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message, hint: this.hint };
    if (this.details !== undefined) error.details = this.details;
    if (requestId !== undefined) error.requestId = requestId;
    return { error };
  }
}

export interface ErrorBody {
  error: { code: string; message: string; hint: string; details?: unknown; requestId?: string };
}

/** Maps anything thrown to a NimbusError; unknown errors become a bare NIMBUS_INTERNAL. */
export function toNimbusError(err: unknown): NimbusError {
  if (err instanceof NimbusError) return err;
  return new NimbusError('NIMBUS_INTERNAL', 'internal error', { cause: err });
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
