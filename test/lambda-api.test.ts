import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-lambda';
import { zipSync } from 'fflate';
import { eventually, functionDir, startPlatform, testNoLeakedChildren } from './helpers.js';

const ECHO = `export const handler = async (event, context) => {
  console.log('echo got', JSON.stringify(event));
  return { event, requestId: context.awsRequestId, fn: context.functionName, remaining: context.getRemainingTimeInMillis() > 0 };
};
`;

const FAILS = `exports.handler = async (event) => {
  console.log('about to fail');
  null.boom;
};
`;

const PY = `def handler(event, context):
    if event.get("fail"):
        raise ValueError("bad input: " + str(event["fail"]))
    print("python got", event)
    return {"sum": event["a"] + event["b"], "fn": context.function_name}
`;

const BOOTSTRAP = `#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\\r')
  curl -sS -X POST "$api/invocation/$id/response" -d "{\\"shell\\":true,\\"event\\":$event}" >/dev/null
  rm -f "$headers"
done
`;

const payloadOf = (out: { Payload?: Uint8Array }) => JSON.parse(Buffer.from(out.Payload ?? new Uint8Array()).toString('utf8'));
const encode = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('the AWS Lambda API, through @aws-sdk/client-lambda', async () => {
  const t = await startPlatform();
  const client = new LambdaClient({
    endpoint: t.platform.gatewayUrl,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'nimbus', secretAccessKey: t.platform.token },
    maxAttempts: 1,
  });
  await t.deploy(functionDir({ 'index.mjs': ECHO }, 'name: echo-lambda\nenv:\n  SECRET_KEY: hunter2\n'));
  await t.deploy(functionDir({ 'index.js': FAILS }, 'name: fails-lambda\n'));
  await t.deploy(functionDir({ 'lambda_function.py': PY }, 'name: py-lambda\nruntime: python\nhandler: lambda_function.handler\n'));

  test('Invoke (RequestResponse) hands the payload to the handler as its event and returns its result', async () => {
    const out = await client.send(new InvokeCommand({ FunctionName: 'echo-lambda', Payload: encode({ hello: 'world', n: [1, 2] }) }));
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, undefined);
    assert.equal(out.ExecutedVersion, '$LATEST');
    const result = payloadOf(out);
    assert.deepEqual(result.event, { hello: 'world', n: [1, 2] });
    assert.equal(result.fn, 'echo-lambda');
    assert.equal(result.remaining, true);
    assert.match(result.requestId, /^[0-9a-f-]{36}$/);
    // By ARN and with the $LATEST qualifier too.
    const byArn = await client.send(
      new InvokeCommand({ FunctionName: 'arn:aws:lambda:eu-west-1:000000000000:function:echo-lambda:$LATEST', Payload: encode(7) }),
    );
    assert.equal(payloadOf(byArn).event, 7);
    // Python, with the same contract.
    const py = await client.send(new InvokeCommand({ FunctionName: 'py-lambda', Payload: encode({ a: 2, b: 3 }) }));
    assert.deepEqual(payloadOf(py), { sum: 5, fn: 'py-lambda' });
  });

  test('LogType Tail returns the invocation log, framed as Lambda frames it', async () => {
    const out = await client.send(new InvokeCommand({ FunctionName: 'echo-lambda', Payload: encode({ tail: 1 }), LogType: 'Tail' }));
    const log = Buffer.from(out.LogResult ?? '', 'base64').toString('utf8');
    const requestId = payloadOf(out).requestId;
    assert.match(log, new RegExp(`^START RequestId: ${requestId} Version: \\$LATEST\n`));
    assert.match(log, /echo got \{"tail":1\}\n/);
    assert.match(
      log,
      new RegExp(`END RequestId: ${requestId}\nREPORT RequestId: ${requestId}\tDuration: [\\d.]+ ms\tBilled Duration: \\d+ ms\tMemory Size: 256 MB\n$`),
    );
    const py = await client.send(new InvokeCommand({ FunctionName: 'py-lambda', Payload: encode({ a: 1, b: 1 }), LogType: 'Tail' }));
    assert.match(Buffer.from(py.LogResult ?? '', 'base64').toString('utf8'), /python got \{'a': 1, 'b': 1\}/);
  });

  test('a failing function: FunctionError Unhandled with the error as the payload', async () => {
    const out = await client.send(new InvokeCommand({ FunctionName: 'fails-lambda', LogType: 'Tail' }));
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, 'Unhandled');
    const error = payloadOf(out);
    assert.equal(error.errorType, 'TypeError');
    assert.match(error.errorMessage, /Cannot read properties of null \(reading 'boom'\)/);
    assert.ok(Array.isArray(error.trace) && error.trace[0].startsWith('TypeError'), JSON.stringify(error));
    assert.match(Buffer.from(out.LogResult ?? '', 'base64').toString('utf8'), /about to fail/);
    const py = await client.send(new InvokeCommand({ FunctionName: 'py-lambda', Payload: encode({ fail: 'x' }) }));
    assert.equal(py.FunctionError, 'Unhandled');
    const pyError = payloadOf(py);
    assert.equal(pyError.errorType, 'ValueError');
    assert.equal(pyError.errorMessage, 'bad input: x');
    assert.ok(
      pyError.stackTrace.some((l: string) => l.includes('raise ValueError')),
      JSON.stringify(pyError),
    );
  });

  test('Event answers 202 and runs the function; DryRun answers 204 and does not', async () => {
    const before = (await t.logs('echo-lambda')).length;
    const dry = await client.send(new InvokeCommand({ FunctionName: 'echo-lambda', InvocationType: 'DryRun', Payload: encode({ dry: true }) }));
    assert.equal(dry.StatusCode, 204);
    const event = await client.send(new InvokeCommand({ FunctionName: 'echo-lambda', InvocationType: 'Event', Payload: encode({ queued: 'yes' }) }));
    assert.equal(event.StatusCode, 202);
    const lines = await eventually(async () => {
      const all = await t.logs('echo-lambda');
      return all.some((l) => l.line.includes('"queued":"yes"')) ? all : undefined;
    });
    assert.equal(lines.filter((l) => l.line.includes('"dry":true')).length, 0);
    assert.equal(lines.length, before + 1);
  });

  test('a Runtime API bootstrap (shell and curl) gets the payload as its event', async () => {
    await t.deploy(functionDir({ bootstrap: BOOTSTRAP }, 'name: sh-runtime\nruntime: process\nstyle: lambda-runtime\n'));
    const out = await client.send(new InvokeCommand({ FunctionName: 'sh-runtime', Payload: encode({ x: 1 }) }));
    assert.deepEqual(payloadOf(out), { shell: true, event: { x: 1 } });
  });

  test('ListFunctions, GetFunction, CreateFunction from a zip, DeleteFunction', async () => {
    const list = await client.send(new ListFunctionsCommand({}));
    const names = (list.Functions ?? []).map((f) => f.FunctionName);
    for (const name of ['echo-lambda', 'fails-lambda', 'py-lambda']) assert.ok(names.includes(name), `${name} in ${names}`);
    const page = await client.send(new ListFunctionsCommand({ MaxItems: 1 }));
    assert.equal(page.Functions?.length, 1);
    assert.ok(page.NextMarker);
    const next = await client.send(new ListFunctionsCommand({ MaxItems: 1, Marker: page.NextMarker }));
    assert.notEqual(next.Functions?.[0].FunctionName, page.Functions?.[0].FunctionName);

    const got = await client.send(new GetFunctionCommand({ FunctionName: 'echo-lambda' }));
    const c = got.Configuration;
    assert.equal(c?.FunctionArn, 'arn:aws:lambda:eu-west-1:000000000000:function:echo-lambda');
    assert.equal(c?.Runtime, `nodejs${process.versions.node.split('.')[0]}.x`);
    assert.equal(c?.MemorySize, 256);
    assert.equal(c?.Version, '$LATEST');
    // Environment values are never listed.
    assert.deepEqual(c?.Environment?.Variables, { SECRET_KEY: '(hidden)' });
    assert.equal((await client.send(new GetFunctionCommand({ FunctionName: 'py-lambda' }))).Configuration?.Runtime?.startsWith('python3.'), true);

    const zip = zipSync({ 'app.mjs': Buffer.from('export const main = async (event) => ({ created: true, got: event });\n') });
    const created = await client.send(
      new CreateFunctionCommand({
        FunctionName: 'made-by-sdk',
        Runtime: 'nodejs20.x',
        Role: 'arn:aws:iam::000000000000:role/ignored',
        Handler: 'app.main',
        Code: { ZipFile: zip },
        MemorySize: 512,
        Timeout: 5,
        Environment: { Variables: { GREETING: 'hi' } },
      }),
    );
    assert.equal(created.FunctionName, 'made-by-sdk');
    assert.equal(created.MemorySize, 512);
    assert.equal(created.Timeout, 5);
    assert.equal(created.Handler, 'app.main');
    // A main export would be detected as OpenWhisk: the Lambda API deploys it as Lambda style.
    const invoked = await client.send(new InvokeCommand({ FunctionName: 'made-by-sdk', Payload: encode({ q: 1 }) }));
    assert.deepEqual(payloadOf(invoked), { created: true, got: { q: 1 } });
    await assert.rejects(
      client.send(new CreateFunctionCommand({ FunctionName: 'made-by-sdk', Runtime: 'nodejs20.x', Role: 'r', Handler: 'app.main', Code: { ZipFile: zip } })),
      { name: 'ResourceConflictException' },
    );

    await client.send(new DeleteFunctionCommand({ FunctionName: 'made-by-sdk' }));
    await assert.rejects(client.send(new GetFunctionCommand({ FunctionName: 'made-by-sdk' })), (err: unknown) => {
      assert.ok(err instanceof ResourceNotFoundException);
      assert.equal(err.message, 'Function not found: arn:aws:lambda:eu-west-1:000000000000:function:made-by-sdk');
      assert.equal(err.$metadata.httpStatusCode, 404);
      return true;
    });
  });

  test('bad requests get the Lambda API error shape', async () => {
    await assert.rejects(client.send(new InvokeCommand({ FunctionName: 'nope' })), { name: 'ResourceNotFoundException' });
    await assert.rejects(client.send(new InvokeCommand({ FunctionName: 'echo-lambda', Qualifier: '99' })), { name: 'ResourceNotFoundException' });
    await assert.rejects(client.send(new InvokeCommand({ FunctionName: 'echo-lambda', Payload: Buffer.from('{not json') })), {
      name: 'InvalidRequestContentException',
    });
    await assert.rejects(
      client.send(
        new CreateFunctionCommand({ FunctionName: 'Bad_Name', Runtime: 'nodejs20.x', Role: 'r', Handler: 'a.b', Code: { ZipFile: new Uint8Array() } }),
      ),
      { name: 'InvalidParameterValueException' },
    );
    await assert.rejects(
      client.send(new CreateFunctionCommand({ FunctionName: 'ruby-fn', Runtime: 'ruby3.3', Role: 'r', Handler: 'a.b', Code: { ZipFile: zipSync({}) } })),
      /Runtime ruby3.3 is not supported/,
    );
    // Code that fails to load is refused at create, with its own error (Lambda would accept it and fail each Invoke).
    const throwsOnLoad = zipSync({ 'index.mjs': Buffer.from('throw new Error("no DATABASE_URL");\nexport const handler = async () => 1;\n') });
    await assert.rejects(
      client.send(
        new CreateFunctionCommand({ FunctionName: 'load-fails', Runtime: 'nodejs20.x', Role: 'r', Handler: 'index.handler', Code: { ZipFile: throwsOnLoad } }),
      ),
      (err: Error) => {
        assert.equal(err.name, 'InvalidParameterValueException');
        assert.match(err.message, /no DATABASE_URL/);
        return true;
      },
    );
    await assert.rejects(client.send(new GetFunctionCommand({ FunctionName: 'load-fails' })), { name: 'ResourceNotFoundException' });
    const wrongSecret = new LambdaClient({
      endpoint: t.platform.gatewayUrl,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'nimbus', secretAccessKey: 'not-the-token' },
      maxAttempts: 1,
    });
    await assert.rejects(wrongSecret.send(new ListFunctionsCommand({})), (err: Error & { $metadata: { httpStatusCode?: number } }) => {
      assert.equal(err.name, 'InvalidSignatureException');
      assert.equal(err.$metadata.httpStatusCode, 403);
      return true;
    });
    // Unsigned: no credentials at all.
    const unsigned = await fetch(`${t.platform.gatewayUrl}/2015-03-31/functions/echo-lambda/invocations`, { method: 'POST', body: '{}' });
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
    assert.deepEqual(await unsigned.json(), { Type: 'User', Message: 'Missing Authentication Token' });
  });
});

testNoLeakedChildren();
