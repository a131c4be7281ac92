/**
 * One gateway's connection events: what it refused and why, what it accepted, how each connection
 * ended (issue 14). Fills in what the device presented and what it was sent, and hands the event to the
 * sink, which returns at once (batched and folded elsewhere): nothing here waits or does I/O.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { AdmissionLimit, ClientInfo, ConnectRequest, EndedConnect, Farewell } from '../broker/index.ts';
import { logText } from '../core/log-text.ts';
import { v3ConnackCode } from '../mqtt/reason-codes.ts';
import { describeDeviceCertificate } from '../registry/certificates.ts';
import type { ConnectionEventInput, ConnectionReason } from '../registry/connection-events.ts';
import type { DeviceCertificateInfo } from '../registry/types.ts';
import { admissionReason, disconnectReason, endedConnectReason, tlsRefusalReason } from './connection-reasons.ts';
import type { ConnectionEventSink, DeviceIdentity } from './ports.ts';

/** Device text and backend words in an event: as in the logs, bounded and never the password. */
const MAX_TEXT = 256;

export class ConnectionEventReporter {
  readonly #sink: ConnectionEventSink | undefined;
  readonly #gatewayId: string;
  readonly #certificateOf: (socket: Socket) => DeviceCertificateInfo | undefined;

  constructor(gatewayId: string, sink: ConnectionEventSink | undefined, certificateOf: (socket: Socket) => DeviceCertificateInfo | undefined) {
    this.#gatewayId = gatewayId;
    this.#sink = sink;
    this.#certificateOf = certificateOf;
  }

  /** A CONNECT the gateway refused (certificate step, throttle, auth chain); `reasonCode` in v5 numbering. */
  refused(req: ConnectRequest, reason: ConnectionReason, detail: string | null, reasonCode: number, deviceName: string | null = null): void {
    this.#record({
      type: 'CONNECT_REFUSED', reason, detail: text(detail, req.password),
      mqttReasonCode: req.protocolVersion === 5 ? reasonCode : v3ConnackCode(reasonCode), protocolVersion: req.protocolVersion,
      clientId: text(req.clientId), username: text(req.username ?? null), deviceName, address: req.remoteAddress ?? null,
      certificate: this.#certificateOf(req.socket) ?? null,
    });
  }

  /** A client certificate refused right after the handshake: the socket is closed, nothing is sent. */
  certificateRefused(socket: TLSSocket, reason: string, subject: string | undefined): void {
    this.#record({
      type: 'CONNECT_REFUSED', reason: tlsRefusalReason(reason), detail: text(subject === undefined ? reason : `${reason}: ${subject}`),
      mqttReasonCode: null, protocolVersion: null, clientId: null, username: null, deviceName: null,
      address: socket.remoteAddress ?? null, certificate: peerCertificate(socket),
    });
  }

  /** A TLS handshake that failed (the device does not trust the server chain, speaks no TLS, took too long). */
  handshakeFailed(socket: TLSSocket, code: string): void {
    this.#record({
      type: 'CONNECT_REFUSED', reason: 'TLS_HANDSHAKE_FAILED', detail: text(code), mqttReasonCode: null, protocolVersion: null,
      clientId: null, username: null, deviceName: null, address: socket.remoteAddress ?? null, certificate: null,
    });
  }

  /** A raw socket refused by a per-address limit before TLS. */
  socketRefused(address: string, limit: AdmissionLimit): void {
    this.#record({
      type: 'CONNECT_REFUSED', reason: admissionReason(limit), detail: limit, mqttReasonCode: null, protocolVersion: null,
      clientId: null, username: null, deviceName: null, address, certificate: null,
    });
  }

  /** The engine ended an attempt before CONNACK (see endedConnectReason). */
  connectEnded(attempt: EndedConnect): void {
    const mapped = endedConnectReason(attempt.cause, attempt.farewell);
    if (mapped === null) return;
    const left = mapped.reason === 'SOCKET_CLOSED';
    this.#record({
      type: left ? 'CONNECT_ABANDONED' : 'CONNECT_REFUSED', reason: mapped.reason,
      detail: left ? (attempt.stage === 'connecting' ? 'while its CONNECT was being verified' : 'before sending a CONNECT') : text(mapped.detail),
      mqttReasonCode: attempt.farewell?.sent ?? null, protocolVersion: attempt.protocolVersion ?? null,
      clientId: text(attempt.clientId ?? null), username: text(attempt.username ?? null), deviceName: null,
      address: attempt.remoteAddress ?? null, certificate: this.#certificateOf(attempt.socket) ?? null,
    });
  }

  accepted(client: ClientInfo, identity: DeviceIdentity): void {
    this.#record({
      type: 'CONNECT_ACCEPTED', reason: 'ACCEPTED', detail: null, mqttReasonCode: 0, protocolVersion: client.protocolVersion,
      clientId: text(client.clientId), username: text(client.username ?? null), deviceName: identity.deviceName,
      address: client.remoteAddress ?? null, certificate: identity.certificate ?? null,
    });
  }

  disconnected(client: ClientInfo, identity: DeviceIdentity, reason: string, farewell: Farewell | null): void {
    const cause = disconnectReason(reason);
    const violation = farewell?.detail === undefined ? reason : `${reason}: ${farewell.detail}`;
    this.#record({
      type: 'DISCONNECTED', reason: cause, detail: cause === 'PROTOCOL_ERROR' ? text(violation) : null,
      mqttReasonCode: farewell?.sent ?? null, protocolVersion: client.protocolVersion,
      clientId: text(client.clientId), username: text(client.username ?? null), deviceName: identity.deviceName,
      address: client.remoteAddress ?? null, certificate: identity.certificate ?? null,
    });
  }

  #record(event: Omit<ConnectionEventInput, 'gatewayId' | 'at'>): void {
    this.#sink?.record({ gatewayId: this.#gatewayId, at: new Date().toISOString(), ...event });
  }
}

function text(value: string | null, secret?: Buffer): string | null {
  return value === null ? null : logText(value, { max: MAX_TEXT, secret }) ?? null;
}

/** The certificate a refused device presented (facts only; it was not trusted). */
function peerCertificate(socket: TLSSocket): DeviceCertificateInfo | null {
  try {
    const cert = socket.getPeerX509Certificate();
    return cert === undefined ? null : describeDeviceCertificate(cert);
  } catch {
    return null; // the socket is already gone
  }
}
