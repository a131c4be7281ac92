/**
 * Waiting for an MQTT.js client's CONNACK in a test. MQTT.js emits no 'error' when the connection closes before any
 * CONNACK (a server that stops while a CONNECT waits, a socket reset after the handshake), and its connect timer
 * stops with the socket: a promise that waits only for 'connect' or 'error' then waits for ever, nothing is left to
 * keep the test's process alive, and node:test cancels the file ("Promise resolution is still pending but the event
 * loop has already resolved") instead of failing the test with a cause.
 */
import type mqtt from 'mqtt';

/**
 * Resolves with the client's CONNACK. Rejects with MQTT.js's error (a refusal: its `code` is the CONNACK's reason or
 * return code), or, when the connection closed before any CONNACK, with "closed before CONNACK" (no `code`).
 */
export function connackOf(client: mqtt.MqttClient): Promise<mqtt.IConnackPacket> {
  return new Promise((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}
