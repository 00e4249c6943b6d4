import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, encodeJsonFrame, FrameDecoder, FrameType } from '../src/runtime/protocol/frames.js';

function collect() {
  const frames: { type: number; stream: number; payload: string }[] = [];
  const decoder = new FrameDecoder((type, stream, payload) => frames.push({ type, stream, payload: payload.toString() }));
  return { frames, decoder };
}

test('frames survive being split at every byte and merged together', () => {
  const wire = Buffer.concat([
    encodeJsonFrame(FrameType.REQ_HEAD, 7, { method: 'GET' }),
    encodeFrame(FrameType.REQ_BODY, 7, Buffer.from('body bytes')),
    encodeFrame(FrameType.REQ_END, 7),
    encodeFrame(FrameType.RES_BODY, 4_000_000_000, Buffer.from('big stream id')),
  ]);
  const expected = [
    { type: FrameType.REQ_HEAD, stream: 7, payload: '{"method":"GET"}' },
    { type: FrameType.REQ_BODY, stream: 7, payload: 'body bytes' },
    { type: FrameType.REQ_END, stream: 7, payload: '' },
    { type: FrameType.RES_BODY, stream: 4_000_000_000, payload: 'big stream id' },
  ];
  for (let cut = 1; cut < wire.length; cut++) {
    const { frames, decoder } = collect();
    decoder.push(wire.subarray(0, cut));
    decoder.push(wire.subarray(cut));
    assert.deepEqual(frames, expected, `split at ${cut}`);
  }
  const { frames, decoder } = collect();
  for (const byte of wire) decoder.push(Buffer.from([byte]));
  assert.deepEqual(frames, expected);
});

test('a corrupt length is a protocol error, not a hang or a huge allocation', () => {
  const { decoder } = collect();
  const bad = Buffer.alloc(9);
  bad.writeUInt32BE(0xffffffff, 0);
  assert.throws(() => decoder.push(bad), /protocol error/);
});
