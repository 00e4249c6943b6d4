import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { type ChannelEvents, PORT_WINDOW_BYTES, portChannel, WINDOW_SLOT, WINDOW_SLOTS } from '../src/runtime/protocol/channel.js';
import { encodeFrame, encodeJsonFrame, FrameType } from '../src/runtime/protocol/frames.js';

type Got = { type: number; stream: number; bytes: number; text?: string };

/** Both ends of a thread instance's channel, in this thread. */
function pair() {
  const { port1, port2 } = new MessageChannel();
  const window = new Int32Array(new SharedArrayBuffer(WINDOW_SLOTS * 4));
  const got: Got[] = [];
  const errors: Error[] = [];
  const events = (into: Got[]): ChannelEvents => ({
    frame: (type, stream, payload) => into.push({ type, stream, bytes: payload.length, text: payload.length < 100 ? payload.toString() : undefined }),
    error: (err) => errors.push(err),
    close: () => {},
  });
  const platform = portChannel(port1, window, 'platform', events([]));
  const instance = portChannel(port2, window, 'instance', events(got));
  return { platform, instance, window, got, errors, port1, port2, close: () => port1.close() };
}

test('frames sent in one tick arrive in order, whole, as one moved message', async () => {
  const p = pair();
  p.platform.send(encodeJsonFrame(FrameType.REQ_HEAD, 3, { method: 'GET' }));
  p.platform.send(encodeFrame(FrameType.REQ_BODY, 3, Buffer.alloc(100_000, 7)));
  p.platform.send(encodeFrame(FrameType.REQ_END, 3));
  let messages = 0;
  p.port2.on('message', () => messages++);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(p.got, [
    { type: FrameType.REQ_HEAD, stream: 3, bytes: 16, text: '{"method":"GET"}' },
    { type: FrameType.REQ_BODY, stream: 3, bytes: 100_000, text: undefined },
    { type: FrameType.REQ_END, stream: 3, bytes: 0, text: '' },
  ]);
  assert.equal(messages, 1);
  assert.equal(Atomics.load(p.window, WINDOW_SLOT.toInstance), 0, 'everything sent was taken in');
  p.close();
});

test('a writer past the window waits until the reader has taken frames in', async () => {
  const p = pair();
  const chunk = Buffer.alloc(256 * 1024, 1);
  let sent = 0;
  let waits = 0;
  while (sent < 4 * PORT_WINDOW_BYTES) {
    p.instance.send(encodeFrame(FrameType.RES_BODY, 1, chunk));
    sent += chunk.length;
    if (p.instance.needsDrain) {
      waits++;
      await p.instance.drained();
      assert.ok(Atomics.load(p.window, WINDOW_SLOT.toPlatform) <= PORT_WINDOW_BYTES, 'drained means back inside the window');
    }
  }
  assert.ok(waits >= 3, `the writer waited (${waits} times)`);
  p.close();
});

test('a frame whose length does not match its message is a protocol error', async () => {
  const p = pair();
  const bad = encodeFrame(FrameType.REQ_END, 1);
  bad.writeUInt32BE(999, 0);
  p.port1.postMessage(bad);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(p.errors.length, 1);
  assert.match(p.errors[0].message, /protocol error/);
  assert.deepEqual(p.got, []);
  p.close();
});
