import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate, parser, type IPublishPacket } from 'mqtt-packet';
import { FrameScanner, PacketType } from './frame-scanner.ts';
import { publishPayloadStart, publishTemplate, PUBACK_TEMPLATE, PUBACK_ID_OFFSET } from './packets.ts';

/** A stream mixing tiny and multi-byte-length frames, so every Remaining Length width is crossed by a split. */
function sampleStream(): Buffer[] {
  const frames: Buffer[] = [
    generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }),
    generate({ cmd: 'suback', messageId: 7, granted: [1] }),
    generate({ cmd: 'pingresp' }),
  ];
  for (const size of [0, 1, 100, 127, 128, 16_383, 16_384, 70_000]) {
    frames.push(generate({ cmd: 'publish', topic: `bench/${size}`, payload: Buffer.alloc(size, size & 0xff), qos: 0, dup: false, retain: false }));
    frames.push(generate({ cmd: 'publish', topic: 'bench/q1', payload: Buffer.alloc(size, 1), qos: 1, messageId: (size % 65_535) + 1, dup: false, retain: false }));
  }
  frames.push(generate({ cmd: 'puback', messageId: 65_535 }));
  return frames;
}

function splitEvery(data: Buffer, step: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += step) out.push(data.subarray(i, Math.min(i + step, data.length)));
  return out;
}

/** Remaining Length of each packet as mqtt-packet's full parser reads the same bytes. */
function referenceLengths(data: Buffer): number[] {
  const seen: number[] = [];
  const p = parser({ protocolVersion: 4 });
  p.on('packet', (packet) => seen.push(packet.length ?? -1));
  p.parse(data);
  return seen;
}

test('frame scanner splits frames like mqtt-packet for every chunk size', { timeout: 90_000 }, () => {
  const frames = sampleStream();
  const data = Buffer.concat(frames);
  const reference = referenceLengths(data);
  for (const step of [1, 2, 3, 5, 7, 64, 1000, data.length]) {
    const seen: Array<[number, number]> = [];
    const scanner = new FrameScanner((header, _buf, start, end) => seen.push([header, end - start]));
    for (const chunk of splitEvery(data, step)) scanner.push(chunk);
    assert.equal(scanner.buffered, 0, `step ${step}`);
    assert.deepEqual(seen.map(([header]) => header), frames.map((f) => f[0]), `headers, step ${step}`);
    assert.deepEqual(seen.map(([, len]) => len), reference, `body lengths, step ${step}`);
  }
});

test('frame scanner rejects a five-byte Remaining Length', { timeout: 5_000 }, () => {
  const scanner = new FrameScanner(() => undefined);
  assert.throws(() => scanner.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), /Remaining Length/);
});

test('publish template offsets match the generated frame', { timeout: 5_000 }, () => {
  const t = publishTemplate('bench/12', 100, 1);
  const frame = Buffer.from(t.frame);
  frame.writeUInt16BE(0xbeef, t.idOffset);
  frame.writeBigUInt64BE(123n, t.payloadOffset);
  const seen: IPublishPacket[] = [];
  const p = parser({ protocolVersion: 4 });
  p.on('packet', (packet) => {
    if (packet.cmd === 'publish') seen.push(packet);
  });
  p.parse(frame);
  assert.equal(seen[0]?.topic, 'bench/12');
  assert.equal(seen[0]?.messageId, 0xbeef);
  assert.equal(Buffer.from(seen[0]?.payload ?? '').readBigUInt64BE(0), 123n);

  let payloadStart = -1;
  new FrameScanner((header, buf, start, end) => {
    assert.equal(header >> 4, PacketType.PUBLISH);
    payloadStart = publishPayloadStart(header, buf, start, end);
  }).push(frame);
  assert.equal(payloadStart, t.payloadOffset);
});

test('puback template carries its identifier at the patched offset', { timeout: 5_000 }, () => {
  const frame = Buffer.from(PUBACK_TEMPLATE);
  frame.writeUInt16BE(4242, PUBACK_ID_OFFSET);
  assert.deepEqual(frame, generate({ cmd: 'puback', messageId: 4242 }));
});
