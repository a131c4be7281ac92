/**
 * The plain-Node floor: not a broker. It answers CONNECT, SUBSCRIBE and PINGREQ, acknowledges QoS 1
 * PUBLISHes, and forwards each PUBLISH frame verbatim to every subscriber (no topic matching, no
 * sessions). What Node itself costs per TLS connection, per connect and per relayed frame, measured by
 * the same generator in the same run as the brokers. Same command line as `gatehouse broker`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string' }, 'tls-port': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' } },
});

const subscribers = new Set<net.Socket>();

function onConnection(socket: net.Socket): void {
  socket.setNoDelay(true);
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    let buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    pending = null;
    let off = 0;
    while (buf.length - off >= 2) {
      let len = 0;
      let mul = 1;
      let pos = off + 1;
      let done = false;
      for (let i = 0; i < 4 && pos < buf.length; i++) {
        const b = buf[pos++]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          done = true;
          break;
        }
      }
      if (!done || buf.length - pos < len) break;
      const type = buf[off]! >> 4;
      const frame = buf.subarray(off, pos + len);
      if (type === 1) socket.write(Buffer.from([0x20, 2, 0, 0]));
      else if (type === 8) {
        subscribers.add(socket);
        socket.write(Buffer.from([0x90, 3, frame[pos]!, frame[pos + 1]!, frame[frame.length - 1]! & 0x03]));
      } else if (type === 3) {
        const qos = (buf[off]! >> 1) & 3;
        if (qos > 0) {
          const topicLen = frame.readUInt16BE(pos - off);
          const idAt = pos - off + 2 + topicLen;
          socket.write(Buffer.from([0x40, 2, frame[idAt]!, frame[idAt + 1]!]));
        }
        for (const s of subscribers) s.write(frame);
      } else if (type === 12) socket.write(Buffer.from([0xd0, 0]));
      else if (type === 14) socket.end();
      off = pos + len;
    }
    if (off < buf.length) pending = Buffer.from(buf.subarray(off));
    buf = Buffer.alloc(0);
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => subscribers.delete(socket));
}

const servers: net.Server[] = [];
if (values.port !== undefined) servers.push(net.createServer(onConnection).listen(Number(values.port), '127.0.0.1'));
if (values['tls-port'] !== undefined && values['tls-cert'] !== undefined && values['tls-key'] !== undefined) {
  const options = { cert: readFileSync(values['tls-cert']), key: readFileSync(values['tls-key']) };
  servers.push(tls.createServer(options, onConnection).listen(Number(values['tls-port']), '127.0.0.1'));
}
const stop = (): void => {
  for (const s of servers) s.close();
  for (const s of subscribers) s.destroy();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
