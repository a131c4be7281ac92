import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Framer, SHARED_FRAME_BYTES } from './framer.ts';

function collect(framer: Framer, chunks: Buffer[]): { frames: string[]; error: string | null } {
  const frames: string[] = [];
  let error: string | null = null;
  for (const c of chunks) {
    error = framer.push(c, { onFrame: (f) => { frames.push(f.toString('hex')); return true; } }) ?? error;
  }
  return { frames, error };
}

test('splits packets across and within chunks', { timeout: 5_000 }, () => {
  // PINGREQ = c0 00; PUBLISH QoS 0 "a" payload "x" = 30 04 00 01 61 78
  const stream = Buffer.from('c000300400016178c000', 'hex');
  const { frames, error } = collect(new Framer(1024), [stream.subarray(0, 3), stream.subarray(3, 7), stream.subarray(7)]);
  assert.equal(error, null);
  assert.deepEqual(frames, ['c000', '300400016178', 'c000']);
});

test('[MQTT-1.5.5-1] a Remaining Length longer than four bytes is malformed', { timeout: 5_000 }, () => {
  const { error } = collect(new Framer(1 << 28), [Buffer.from('30ffffffff7f', 'hex')]);
  assert.equal(error, 'malformed-length');
});

test('a packet above the maximum size is refused from its header alone', { timeout: 5_000 }, () => {
  // Remaining Length 200 (c8 01) declared, nothing of the body sent yet.
  const { error, frames } = collect(new Framer(100), [Buffer.from('30c801', 'hex')]);
  assert.equal(error, 'too-large');
  assert.deepEqual(frames, []);
});

test('stops when the consumer asks and resumes with the rest', { timeout: 5_000 }, () => {
  const framer = new Framer(1024);
  const seen: string[] = [];
  framer.push(Buffer.from('c000d000', 'hex'), { onFrame: (f) => { seen.push(f.toString('hex')); return false; } });
  assert.deepEqual(seen, ['c000']);
  framer.push(null, { onFrame: (f) => { seen.push(f.toString('hex')); return true; } });
  assert.deepEqual(seen, ['c000', 'd000']);
});

test('a large packet arriving in many chunks comes out whole and once, whatever the chunk boundaries', { timeout: 60_000 }, () => {
  const frameOf = (bodyLength: number, fill: number): Buffer => {
    const length: number[] = [];
    let n = bodyLength;
    do {
      let byte = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) byte |= 0x80;
      length.push(byte);
    } while (n > 0);
    return Buffer.concat([Buffer.from([0x30, ...length]), Buffer.alloc(bodyLength, fill)]);
  };
  const expected = [frameOf(0, 0), frameOf(70_000, 1), frameOf(3, 2), frameOf(300, 3), frameOf(200_000, 4), frameOf(1, 5)];
  const stream = Buffer.concat(expected);
  let seed = 7;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 50; round++) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length;) {
      const size = 1 + Math.floor(random() * (round % 2 === 0 ? 20_000 : 17));
      chunks.push(stream.subarray(at, at + size));
      at += size;
    }
    const framer = new Framer(1 << 20);
    const frames: Buffer[] = [];
    for (const c of chunks) {
      assert.equal(framer.push(c, { onFrame: (f) => { frames.push(Buffer.from(f)); return true; } }), null);
      // A resume with nothing new (chunk null) changes nothing.
      assert.equal(framer.push(null, { onFrame: (f) => { frames.push(Buffer.from(f)); return true; } }), null);
    }
    assert.equal(frames.length, expected.length, `round ${round}`);
    frames.forEach((f, i) => assert.ok(f.equals(expected[i]!), `round ${round}, frame ${i}`));
    assert.equal(framer.bufferedBytes, 0);
  }
});

test('[MQTT-3.1.2-24] the maximum size counts the whole packet, fixed header bytes included (issue 18)', { timeout: 5_000 }, () => {
  // Maximum Packet Size is "the total number of bytes in an MQTT Control Packet": for a 130-byte limit, a
  // PUBLISH whose Remaining Length is 127 (one length byte: 1 + 1 + 127 = 129) and one of 128 (two length
  // bytes: 1 + 2 + 128 = 131) fall on either side, though both bodies are under 130.
  const publish = (remaining: number): Buffer => {
    const length = remaining < 128 ? [remaining] : [(remaining & 0x7f) | 0x80, remaining >> 7];
    return Buffer.concat([Buffer.from([0x30, ...length]), Buffer.from([0x00, 0x01, 0x61]), Buffer.alloc(remaining - 3, 0x78)]);
  };
  assert.deepEqual(collect(new Framer(130), [publish(127)]), { frames: [publish(127).toString('hex')], error: null });
  assert.equal(collect(new Framer(130), [publish(128)]).error, 'too-large');
  // Exactly at the limit passes; one byte over does not.
  assert.equal(collect(new Framer(129), [publish(127)]).error, null);
  assert.equal(collect(new Framer(128), [publish(127)]).error, 'too-large');
  // The limit can change on a live framer (set to what CONNACK announced); the next packet meets the new one.
  const framer = new Framer(1024);
  assert.equal(collect(framer, [publish(127)]).error, null);
  framer.maxPacketSize = 128;
  assert.equal(collect(framer, [publish(127)]).error, 'too-large');
});

/** A PUBLISH-typed frame of exactly `total` bytes, fixed header included, body filled with `fill`. */
function frameOfTotal(total: number, fill = 0x78): Buffer {
  for (let lengthBytes = 1; lengthBytes <= 4; lengthBytes++) {
    const body = total - 1 - lengthBytes;
    const length: number[] = [];
    let n = body;
    do {
      length.push((n % 128) | (n >= 128 ? 0x80 : 0));
      n = Math.floor(n / 128);
    } while (n > 0);
    if (length.length === lengthBytes) return Buffer.concat([Buffer.from([0x30, ...length]), Buffer.alloc(body, fill)]);
  }
  throw new Error(`no frame of ${total} bytes`);
}

test('bufferedBytes counts what waits: a partial header, a partial body, frames the consumer has not taken', { timeout: 5_000 }, () => {
  const framer = new Framer(1024);
  const frames: string[] = [];
  const take = { onFrame: (f: Buffer) => { frames.push(f.toString('hex')); return true; } };
  assert.equal(framer.bufferedBytes, 0);
  framer.push(Buffer.from('30', 'hex'), take);
  assert.equal(framer.bufferedBytes, 1, 'one byte of a fixed header');
  framer.push(Buffer.from('0400', 'hex'), take);
  assert.equal(framer.bufferedBytes, 3, 'the header and one body byte of six');
  framer.push(Buffer.from('01', 'hex'), take);
  assert.equal(framer.bufferedBytes, 4);
  framer.push(Buffer.from('6178c0', 'hex'), take);
  assert.deepEqual(frames, ['300400016178']);
  assert.equal(framer.bufferedBytes, 1, 'the first byte of the next packet');
  framer.push(Buffer.from('00', 'hex'), take);
  assert.deepEqual(frames, ['300400016178', 'c000']);
  assert.equal(framer.bufferedBytes, 0);
  // Whole frames the consumer did not take yet are counted too.
  framer.push(Buffer.from('c000d000e000', 'hex'), { onFrame: () => false });
  assert.equal(framer.bufferedBytes, 4);
});

test('a small remainder of a big chunk is copied, so the chunk can be freed; other remainders are kept as they are', { timeout: 5_000 }, () => {
  // The first frame is taken and the consumer stops: the rest (one whole frame) waits in the framer,
  // and comes out on the next push. Copied means it no longer shares the big chunk's memory.
  const restAfter = (chunkLength: number, restLength: number): { copied: boolean; frame: string } => {
    const rest = frameOfTotal(restLength, 0x72);
    const chunk = Buffer.concat([frameOfTotal(chunkLength - restLength), rest]);
    const framer = new Framer(1 << 20);
    framer.push(chunk, { onFrame: () => false });
    const out: Buffer[] = [];
    framer.push(null, { onFrame: (f) => { out.push(f); return true; } });
    assert.equal(out.length, 1);
    assert.ok(out[0]!.equals(rest));
    return { copied: out[0]!.buffer !== chunk.buffer, frame: `${chunkLength}/${restLength}` };
  };
  assert.deepEqual(restAfter(65_537, 4_095), { copied: true, frame: '65537/4095' });
  assert.deepEqual(restAfter(65_536, 4_095), { copied: false, frame: '65536/4095' }, 'a chunk of 64 KiB is not big');
  assert.deepEqual(restAfter(65_537, 4_096), { copied: false, frame: '65537/4096' }, 'a remainder of 4 KiB is not small');
});

test('a stream fed one byte at a time, Remaining Lengths of one to three bytes split anywhere, comes out whole', { timeout: 15_000 }, () => {
  // Bodies at each Remaining Length boundary: 0, 127 | 128, 16383 | 16384 (one, two, three length bytes).
  const frames = [2, 129, 131, 16_386, 16_388].map((total, i) => frameOfTotal(total, i));
  const stream = Buffer.concat(frames);
  const framer = new Framer(1 << 20);
  const out: Buffer[] = [];
  for (let i = 0; i < stream.length; i++) {
    assert.equal(framer.push(stream.subarray(i, i + 1), { onFrame: (f) => { out.push(Buffer.from(f)); return true; } }), null);
  }
  assert.equal(out.length, frames.length);
  out.forEach((f, i) => assert.ok(f.equals(frames[i]!), `frame ${i}`));
  assert.equal(framer.bufferedBytes, 0);
});

test('[MQTT-1.5.5-1] a four-byte Remaining Length is well-formed: judged by the size limit, or waited for', { timeout: 5_000 }, () => {
  // 80 80 80 01 = 2^21 bytes.
  assert.equal(collect(new Framer(1 << 20), [Buffer.from('3080808001', 'hex')]).error, 'too-large');
  const framer = new Framer(1 << 28);
  assert.deepEqual(collect(framer, [Buffer.from('3080808001', 'hex')]), { frames: [], error: null });
  assert.equal(framer.bufferedBytes, 5);
});

test('each frame comes with its packet type, the high four bits of its first byte', { timeout: 5_000 }, () => {
  // CONNECT-typed 10 00, PUBLISH QoS 1 flags 32 00, PINGREQ c0 00, AUTH f0 00.
  const types: number[] = [];
  new Framer(1024).push(Buffer.from('10003200c000f000', 'hex'), { onFrame: (_f, type) => { types.push(type); return true; } });
  assert.deepEqual(types, [1, 3, 12, 15]);
});

/** Everything one framer makes of `chunks`: the frames, and each push's answer. */
function feed(maxPacketSize: number, chunks: Buffer[]): { frames: string[]; answers: (string | null)[] } {
  const framer = new Framer(maxPacketSize);
  const frames: string[] = [];
  const answers = chunks.map((c) => framer.push(c, { onFrame: (f) => { frames.push(f.toString('hex')); return true; } }));
  return { frames, answers };
}

test('a stream cut in two anywhere frames as it does whole: the same frames, and an error as soon as its evidence is in', { timeout: 15_000 }, () => {
  // A fixed header cut inside its Remaining Length must be waited for, not read as a shorter length:
  // read short, a too-large packet would be buffered up to the short length before being refused, and
  // a fifth length byte would be taken for body (issue 18: two such mutants passed every test).
  const cases: { max: number; hex: string; error: string | null; evidence: number }[] = [
    // PINGREQ; PUBLISH "a" "x"; a PUBLISH of Remaining Length 128 (80 01); PINGRESP.
    { max: 1024, hex: `c000300400016178${frameOfTotal(131).toString('hex')}d000`, error: null, evidence: 0 },
    // PINGREQ, then a Remaining Length of 200 (c8 01) under a limit of 100: refused once its 01 is in.
    { max: 100, hex: 'c00030c801', error: 'too-large', evidence: 4 },
    // PINGREQ, then five length bytes: malformed once the fourth, still continued, is in.
    { max: 1 << 28, hex: 'c00030ffffffff7f', error: 'malformed-length', evidence: 6 },
  ];
  for (const { max, hex, error, evidence } of cases) {
    const stream = Buffer.from(hex, 'hex');
    const whole = feed(max, [stream]);
    assert.deepEqual(whole.answers, [error], hex);
    for (let cut = 1; cut < stream.length; cut++) {
      const split = feed(max, [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(split.frames, whole.frames, `${hex} cut at ${cut}`);
      // The push that brings the byte completing the evidence answers with the error (the connection ends
      // there: what a push after an error answers is not asked).
      const at = split.answers.findIndex((a) => a !== null);
      assert.deepEqual([at, split.answers[at] ?? null], error === null ? [-1, null] : [cut > evidence ? 0 : 1, error], `${hex} cut at ${cut}`);
    }
  }
});

test('a frame that arrives within one chunk is handed on as a view of that chunk, not a copy', { timeout: 5_000 }, () => {
  // Buffer.alloc (not from the shared pool): a frame on the chunk's memory has the chunk's ArrayBuffer.
  const own = (hex: string): Buffer => {
    const b = Buffer.alloc(hex.length / 2);
    b.write(hex, 'hex');
    return b;
  };
  const framer = new Framer(1024);
  // Each chunk holds whole frames only, so nothing is left over between them: the next chunk is not
  // joined to an (empty) remainder of the last.
  for (const chunk of [own('c000300400016178'), own('d000e000'), own('c000')]) {
    const views: boolean[] = [];
    framer.push(chunk, { onFrame: (f) => { views.push(f.buffer === chunk.buffer); return true; } });
    assert.ok(views.length > 0 && views.every(Boolean), `frames of ${chunk.toString('hex')} are views of it: ${views.join()}`);
    assert.equal(framer.bufferedBytes, 0);
  }
});

test('a frame of 64 KiB or more joined from several chunks is in shared memory (it crosses to the writer threads uncopied); smaller or single-chunk frames are not', { timeout: 5_000 }, () => {
  assert.equal(SHARED_FRAME_BYTES, 65_536, 'the threshold is 64 KiB (the cases below are written for it)');
  const frames: Buffer[] = [];
  const sink = { onFrame: (f: Buffer) => { frames.push(f); return true; } };
  const framer = new Framer(1 << 24);
  framer.shareLargeFrames = true; // an accepted client's
  const big = frameOfTotal(65_536, 0x61);
  const under = frameOfTotal(65_535, 0x62);
  for (const f of [big, under]) for (let at = 0; at < f.length; at += 16_384) framer.push(f.subarray(at, at + 16_384), sink);
  framer.push(Buffer.from(frameOfTotal(65_536, 0x63)), sink); // whole in one chunk: a view of it
  // Most of it in its last chunk, so it is whole before a quarter of it waited: joined at the end, shared too.
  const late = frameOfTotal(65_536, 0x64);
  late.fill(0x65, 30_000);
  framer.push(late.subarray(0, 100), sink);
  framer.push(late.subarray(100), sink);
  assert.equal(frames.length, 4);
  assert.ok(frames[0]!.equals(big) && frames[1]!.equals(under) && frames[3]!.equals(late), 'the bytes are the same either way');
  assert.deepEqual(frames.map((f) => f.buffer instanceof SharedArrayBuffer), [true, false, false, true]);
});

test('a frame of exactly 64 KiB has its shared buffer from its first quarter on; one byte less is gathered as chunks', { timeout: 5_000 }, () => {
  for (const [total, reserved] of [[65_536, true], [65_535, false]] as const) {
    const framer = new Framer(1 << 24);
    framer.shareLargeFrames = true; // an accepted client's
    const frame = frameOfTotal(total, 0x61);
    framer.push(frame.subarray(0, 16_384), { onFrame: () => true });
    assert.equal(framer.bufferedBytes, reserved ? total : 16_384, `${total} bytes`);
  }
});

test('a big frame gets its shared buffer once a quarter of it has arrived, and is copied in as it comes: a peer that announces a big frame makes the process hold at most four times what it sent', { timeout: 5_000 }, () => {
  const total = 1 << 20;
  const big = frameOfTotal(total, 0x61);
  big.fill(0x5a, total - 4096); // its last bytes differ: a chunk copied to the wrong place shows
  const frames: Buffer[] = [];
  const framer = new Framer(1 << 24);
  framer.shareLargeFrames = true; // an accepted client's
  const held: number[] = [];
  for (let at = 0; at < total; at += 16_384) {
    framer.push(big.subarray(at, at + 16_384), { onFrame: (f) => { frames.push(f); return true; } });
    held.push(framer.bufferedBytes);
  }
  // 16 chunks are a quarter: before, what arrived; from then on the whole frame is reserved.
  assert.deepEqual(held.slice(0, 16), Array.from({ length: 16 }, (_, i) => i === 15 ? total : (i + 1) * 16_384));
  assert.ok(held.slice(15, -1).every((h) => h === total), 'reserved once, for the whole frame');
  assert.equal(held.at(-1), 0);
  assert.equal(frames.length, 1);
  assert.ok(frames[0]!.buffer instanceof SharedArrayBuffer && frames[0]!.equals(big));
});

test('a big frame cut anywhere, with frames after it in its last chunk, comes out whole and in order; a sink that stops at it keeps what follows', { timeout: 10_000 }, () => {
  const big = frameOfTotal(SHARED_FRAME_BYTES * 2, 0x61);
  big.fill(0x5a, big.length - 100);
  const after = Buffer.from('c000d000', 'hex'); // PINGREQ, PINGRESP
  const stream = Buffer.concat([Buffer.from('c000', 'hex'), big, after]);
  for (const cut of [1, 2, 3, 5, 4096, 32_768, 32_769, SHARED_FRAME_BYTES / 2 + 2, 100_000, stream.length - after.length, stream.length - 3, stream.length - 1]) {
    for (const stopAtBig of [false, true]) {
      const framer = new Framer(1 << 24);
      framer.shareLargeFrames = true; // an accepted client's
      const seen: Buffer[] = [];
      const types: number[] = [];
      const sink = { onFrame: (f: Buffer, type: number) => { seen.push(Buffer.from(f)); types.push(type); return !(stopAtBig && f.length === big.length); } };
      // Cut into pieces of `cut` bytes (the last shorter).
      for (let at = 0; at < stream.length; at += cut) framer.push(stream.subarray(at, at + cut), sink);
      if (stopAtBig) {
        const before = seen.length;
        framer.push(null, sink); // the sink is ready again
        assert.ok(seen.length >= before, `cut ${cut}`);
      }
      assert.deepEqual(seen.map((f) => f.toString('hex')), [Buffer.from('c000', 'hex'), big, after.subarray(0, 2), after.subarray(2)].map((f) => f.toString('hex')), `cut ${cut}, stop at the big frame: ${stopAtBig}`);
      assert.deepEqual(types, [12, 3, 12, 13], `cut ${cut}: each frame's packet type (PINGREQ, PUBLISH, PINGREQ, PINGRESP)`);
      assert.equal(framer.bufferedBytes, 0, `cut ${cut}`);
    }
  }
});

test('before the client is accepted nothing is reserved ahead of what arrived: a stranger\'s big CONNECT is held as the bytes it sent, and not in shared memory', { timeout: 5_000 }, () => {
  const framer = new Framer(1 << 24); // shareLargeFrames is off until CONNACK
  const frames: Buffer[] = [];
  const connect = frameOfTotal(1 << 20, 0x61);
  connect[0] = 0x10;
  const held: number[] = [];
  for (let at = 0; at < connect.length; at += 16_384) {
    framer.push(connect.subarray(at, at + 16_384), { onFrame: (f) => { frames.push(f); return true; } });
    held.push(framer.bufferedBytes);
  }
  assert.deepEqual(held, Array.from({ length: 64 }, (_, i) => (i === 63 ? 0 : (i + 1) * 16_384)), 'what arrived, never the whole frame ahead');
  assert.equal(frames.length, 1);
  assert.ok(frames[0]!.equals(connect) && !(frames[0]!.buffer instanceof SharedArrayBuffer));
});
