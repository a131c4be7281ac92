/**
 * One running gateway: its own MQTT engine (its own topic space: devices on one gateway never see
 * another's messages) behind its own TLS listener, with the gateway's verification in the CONNECT path.
 */
import tls from 'node:tls';
import {
  Broker, guardTlsServer, type AuthResult, type BrokerOptions, type BrokerPersistence, type ClientInfo, type ClusterLink, type ConnectRequest, type Session, type SharedAdmission,
} from '../broker/index.ts';
import { RC } from '../mqtt/reason-codes.ts';
import type { Logger } from '../core/logger.ts';
import { logText } from '../core/log-text.ts';
import type { GatewayRuntimeConfig } from '../registry/types.ts';
import type { ConnectionEventSink, DeviceIdentity, DevicePresence, GatewayDirectory, SessionAccess } from './ports.ts';
import { certificateStepReason, denyReason, unavailableReason, type Provider } from './connection-reasons.ts';
import { ConnectionEventReporter } from './connection-event-reporter.ts';
import { compileSessionAcl } from './acl/index.ts';
import { parseSharedFilter } from '../mqtt/topics.ts';
import type { QoS } from '../mqtt/codec.ts';
import { AuthChain } from './auth/chain.ts';
import type { Authenticator } from './auth/authenticator.ts';
import { ImportedAuthenticator } from './auth/imported/imported-authenticator.ts';
import { FunctionAuthenticator, type FunctionScripts } from './auth/function/index.ts';
import { HttpsAuthenticator } from './auth/https/index.ts';
import type { ThirdPartyStats } from './auth/third-party.ts';
import { checkedDeviceName } from '../registry/index.ts';
import { ConnectThrottle, type ConnectGate } from './auth/throttle.ts';
import type { Decision } from './auth/authenticator.ts';
import { tlsInputsDiffer, tlsOptionsFor } from './tls/server-options.ts';
import { CertificateChecks } from './tls/certificate-checks.ts';
import type { OcspTimings } from './tls/ocsp-cache.ts';
import type { GatewayOcspState } from '../registry/ports.ts';
import type { AclRule } from '../registry/access-control.ts';
import type { SessionAcl } from './acl/index.ts';
import { engineLimitsOf, limitsUsageOf } from './limits.ts';
import { DeviceChanges } from './device-changes.ts';
import { directPorts, type GatewayPorts } from './listen-port.ts';
import type { GatewayLimitsUsage } from '../registry/gateway-limits.ts';

/** Opens the durable MQTT state (retained messages, persistent sessions) of a gateway. */
export interface StateStoreFactory {
  open(gatewayId: string): BrokerPersistence;
  /** The gateway was deleted: drop its state (settles once gone, after what was written before). */
  forget(gatewayId: string): void | Promise<void>;
}

/** Opens a gateway engine's link to the other nodes of a cluster (src/cluster/); the engine closes it. */
export interface ClusterLinkFactory {
  open(gatewayId: string): ClusterLink;
}

/**
 * A cluster node's CONNECT throttles (src/cluster/attempt-throttles.ts): the gateway's own throttle judges the source
 * addresses homed on this node, and the attempts of the others are judged by their home's, so that brute-force
 * protection holds for a source wherever its attempts land. Closed when the gateway stops here.
 */
export interface ClusterThrottleFactory {
  open(gatewayId: string, local: ConnectGate): ConnectGate & { close(): void };
}


/** The auth chain's answer, before the certificate facts and the access rules are added. */
type ChainOutcome =
  | { ok: true; identity: DeviceIdentity; deviceRules: readonly AclRule[]; stateReadAt: number }
  | { ok: false; reasonCode: number };

export interface GatewayInstanceDeps {
  directory: GatewayDirectory;
  logger: Logger;
  /** Address the listener binds. */
  host: string;
  brokerOptions?: Partial<BrokerOptions>;
  stateStores?: StateStoreFactory;
  /** OCSP cache bounds and timeouts; the defaults follow DESIGN.md (tests shorten them). */
  ocspTimings?: Partial<OcspTimings>;
  /** Compiled verification functions shared by the gateways (third-party FUNCTION provider). */
  functionScripts?: FunctionScripts;
  /** Connection events (CONNECT outcomes, disconnect causes); absent in tests of the engine alone. */
  connectionEvents?: ConnectionEventSink;
  /** A cluster node's links to the other nodes, one per gateway engine; absent in a single process. */
  clusterLinks?: ClusterLinkFactory;
  /** A cluster node's CONNECT throttles across the nodes; absent in a single process (the gateway's own throttle). */
  clusterThrottles?: ClusterThrottleFactory;
  /** Under GATEHOUSE_WORKERS, the machine's per-address admission tables (the primary's), one port per gateway. */
  sharedAdmission?: { open(gatewayId: string): SharedAdmission };
  /** How the TLS listener takes its port: itself (default), or through the primary under GATEHOUSE_WORKERS. */
  ports?: GatewayPorts;
}

export class GatewayInstance {
  readonly broker: Broker;
  #config: GatewayRuntimeConfig;
  #server: tls.Server | null = null;
  #port = 0;
  #chain: AuthChain;
  #imported: ImportedAuthenticator;
  /** The third-party provider, kept across edits that leave `thirdParty` alone (its cache and breaker stay). */
  #thirdParty: { key: string; provider: FunctionAuthenticator | HttpsAuthenticator } | null = null;
  readonly #throttle: ConnectGate & { close?(): void };
  readonly #authStats = { allowed: 0, denied: 0, unavailable: 0 };
  /**
   * Topic access control at work: PUBLISH and SUBSCRIBE refused (a v3.1.1 PUBLISH is acknowledged and
   * dropped), subscriptions removed and owed messages dropped because rules changed under a session.
   */
  readonly #aclRefusals = { publish: 0, subscribe: 0, revoked: 0, delivery: 0 };
  /** Bumped by every change of the gateway's rules: an access compiled under an older one is compiled again. */
  #accessVersion = 0;
  /** Devices the operator changed, so a CONNECT can tell whether what it read before a slow step still holds. */
  readonly #deviceChanges = new DeviceChanges();
  /** When an accepted CONNECT last knew its device's state (checked again once it is connected). */
  readonly #stateReadAt = new WeakMap<DeviceIdentity, number>();
  readonly #deps: GatewayInstanceDeps;
  readonly #log: Logger;
  readonly #ports: GatewayPorts;
  /** Device certificate verification, OCSP stapling and client OCSP checks. */
  readonly #certificates: CertificateChecks;
  readonly #events: ConnectionEventReporter;
  /** Told of every connection and disconnection of a device (the platform's tap). */
  readonly #presenceListeners = new Set<(presence: DevicePresence) => void>();
  /**
   * Per device, its last presence record still being written: the next one starts after it, so the registry's
   * record ends as the engine saw the device last (a takeover's offline, then its online, written in that order).
   */
  readonly #recording = new Map<string, Promise<boolean>>();

  constructor(config: GatewayRuntimeConfig, deps: GatewayInstanceDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#ports = deps.ports ?? directPorts;
    this.#throttle = deps.clusterThrottles?.open(config.id, new ConnectThrottle()) ?? new ConnectThrottle();
    this.#log = deps.logger.child({ gatewayId: config.id, gateway: config.name });
    this.#imported = new ImportedAuthenticator(config.productKey, deps.directory, { logger: this.#log });
    this.#chain = this.#buildChain();
    this.#events = new ConnectionEventReporter(config.id, deps.connectionEvents, (socket) => this.#certificates.certificateOf(socket)?.info);
    this.broker = new Broker({
      // The gateway's limits (per-address caps included) are the engine's; an edit sets them live.
      options: { ...deps.brokerOptions, ...engineLimitsOf(config.limits) },
      logger: this.#log,
      persistence: deps.stateStores?.open(config.id),
      link: deps.clusterLinks?.open(config.id),
      sharedAdmission: deps.sharedAdmission?.open(config.id),
      hooks: {
        authenticate: (req) => this.#checkCertificateThenAuthenticate(req),
        authorizePublish: (client, topic) => this.#authorizePublish(client, topic),
        authorizeSubscribe: (client, filter, qos) => this.#authorizeSubscribe(client, filter, qos),
        mayReceive: (identity, topic) => this.#mayReceive(identity, topic),
      },
    });
    this.broker.on('client_connected', (c) => this.#deviceConnected(c));
    this.broker.on('client_disconnected', (c, reason, farewell) => {
      const identity = c.identity as DeviceIdentity | undefined;
      if (identity !== undefined) this.#events.disconnected(c, identity, reason, farewell);
      this.#deviceDisconnected(c, reason);
    });
    this.broker.on('connect_ended', (attempt) => this.#events.connectEnded(attempt));
    this.broker.on('socket_refused', (address, limit) => this.#events.socketRefused(address, limit));
    const fingerprintOf = (c: ClientInfo): string | undefined => (c.identity as DeviceIdentity | undefined)?.certificate?.fingerprint256;
    this.#certificates = new CertificateChecks(config, {
      log: this.#log,
      timings: deps.ocspTimings,
      connectedCertificates: () => this.broker.clients().map(fingerprintOf).filter((f) => f !== undefined),
      disconnect: (fingerprint) => this.broker.disconnectWhere((c) => fingerprintOf(c) === fingerprint, RC.ADMINISTRATIVE_ACTION, 'certificate_revoked'),
      onRefused: (socket, reason, subject) => this.#events.certificateRefused(socket, reason, subject),
    });
  }

  /** Stapling and client-certificate checks of the running gateway (undefined without X.509 and OCSP). */
  get ocspState(): GatewayOcspState | undefined {
    return this.#certificates.state();
  }

  get config(): GatewayRuntimeConfig {
    return this.#config;
  }

  /** The port actually listened on (0 before start). */
  get port(): number {
    return this.#port;
  }

  /** CONNECT verification outcomes since the listener started. */
  get authStats(): Readonly<Record<'allowed' | 'denied' | 'unavailable', number>> {
    return this.#authStats;
  }

  /** Counters of the third-party provider (calls, cache hits, breaker), or null for one-party gateways. */
  get thirdPartyStats(): Readonly<ThirdPartyStats> | null {
    return this.#thirdParty?.provider.stats ?? null;
  }

  /** PUBLISH and SUBSCRIBE packets refused by topic access control since the listener started. */
  get aclRefusals(): Readonly<Record<'publish' | 'subscribe' | 'revoked' | 'delivery', number>> {
    return this.#aclRefusals;
  }

  /** The gateway's connected clients: on a cluster node, those of every live node (a heartbeat late at most). */
  get connectedClients(): number {
    return this.broker.connectionsHeld;
  }

  /** Each limit's current use and how often it refused or paced (API, console, metrics). */
  limitsUsage(): GatewayLimitsUsage {
    return limitsUsageOf(this.broker);
  }

  async start(): Promise<void> {
    await this.broker.restore();
    this.#server = await this.#listen(this.#config.port);
    this.#port = this.#config.port;
    this.#log.info({ port: this.#port }, 'gateway_listening');
  }

  /**
   * Applies an edited configuration live: a new certificate swaps in for new handshakes while
   * connected devices stay; a new port moves the listener (connected devices stay on the old
   * socket until they reconnect); a verification change applies to the next CONNECT.
   */
  async apply(next: GatewayRuntimeConfig): Promise<void> {
    const previous = this.#config;
    if (this.#server !== null && tlsInputsDiffer(previous, next)) {
      this.#server.setSecureContext(tlsOptionsFor(next));
      this.#log.info('gateway_certificates_swapped');
    }
    this.#certificates.apply(next); // a rotated server certificate gets its own stapled response
    if (this.#server !== null && next.port !== this.#port) {
      const moved = await this.#listen(next.port); // throws when the new port is taken: the old one stays
      const old = this.#server;
      this.#server = moved;
      this.#port = next.port;
      void this.#ports.close(old);
      this.#log.info({ port: next.port }, 'gateway_port_moved');
    }
    this.#config = next;
    if (JSON.stringify(previous.limits) !== JSON.stringify(next.limits)) {
      this.broker.setLimits(engineLimitsOf(next.limits));
      this.#log.info({ limits: next.limits }, 'gateway_limits_applied');
    }
    if (JSON.stringify(previous.accessControl) !== JSON.stringify(next.accessControl)) this.#recompileAccess();
    if (previous.authType !== next.authType || previous.productKey !== next.productKey) {
      this.#imported = new ImportedAuthenticator(next.productKey, this.#deps.directory, { logger: this.#log });
    }
    this.#chain = this.#buildChain();
  }

  /** Device changes may have been missed (a cluster's bus was cut off): every cached credential is read again. */
  forgetCachedCredentials(): void {
    this.#imported.invalidate(null);
  }

  /**
   * A device row changed: forget its cached credentials; disconnect it when it was deleted or
   * disabled (v5 clients hear 0x98 administrative action). A CONNECT of that device still being verified
   * sees the change through `#deviceChanges` (`#checkDeviceState`, `#deviceConnected`).
   */
  deviceChanged(username: string | null, deviceName: string, change: 'updated' | 'deleted'): void {
    this.#deviceChanges.record(deviceName);
    this.#imported.invalidate(username);
    if (change === 'deleted') this.#disconnectDevice(deviceName, 'device_deleted');
    else this.#disconnectIfRefused(deviceName, change);
  }

  /**
   * The operator's "disconnect now": every connection of the device ends (v5: 0x98 administrative action);
   * it may connect again at once. Returns how many connections ended.
   */
  disconnectDevice(deviceName: string): number {
    return this.#disconnectDevice(deviceName, 'disconnected_by_operator');
  }

  /** `reason`: device_deleted, device_disabled or disconnected_by_operator, the cause in connection events (KICKED). */
  #disconnectDevice(deviceName: string, reason: string, cause = reason): number {
    const n = this.broker.disconnectWhere((c) => (c.identity as DeviceIdentity | undefined)?.deviceName === deviceName, RC.ADMINISTRATIVE_ACTION, reason);
    if (n > 0) this.#log.info({ deviceName, change: cause }, 'device_disconnected_by_operator');
    return n;
  }

  /** Reads the device and disconnects its connections if it may no longer connect (`#refusal`). */
  #disconnectIfRefused(deviceName: string, cause: string): void {
    this.#deps.directory.findDevice(this.#config.productKey, deviceName).then(
      (device) => {
        const refusal = this.#refusal(device);
        if (refusal !== null) this.#disconnectDevice(deviceName, refusal.reason, cause);
      },
      (err: unknown) => this.#log.error({ err, deviceName }, 'device_lookup_failed'),
    );
  }

  /**
   * Why a device read from the registry may not connect, or null. Disabled means disabled whoever verified
   * it; a one-party device must still exist (its row is its credential), while a third-party one that does
   * not is created on its first connection: the customer's service decides that it exists.
   */
  #refusal(device: { status: string } | undefined): { reasonCode: number; reason: string } | null {
    if (device?.status === 'DISABLED') return { reasonCode: RC.NOT_AUTHORIZED, reason: 'device_disabled' };
    if (device === undefined && this.#config.authType === 'ONE_PARTY') return { reasonCode: RC.BAD_USER_NAME_OR_PASSWORD, reason: 'device_deleted' };
    return null;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    this.#port = 0;
    this.#certificates.stop();
    this.#throttle.close?.();
    this.#replaceThirdParty(null);
    await this.broker.close();
    if (server !== null) await this.#ports.close(server);
  }

  #buildChain(): AuthChain {
    const providers: Authenticator[] = [];
    if (this.#config.authType === 'ONE_PARTY') providers.push(this.#imported);
    const thirdParty = this.#config.authType === 'THIRD_PARTY' ? this.#config.thirdParty : null;
    const key = thirdParty === null ? '' : JSON.stringify(thirdParty);
    if (this.#thirdParty?.key !== key) this.#replaceThirdParty(thirdParty === null ? null : { key, thirdParty });
    if (this.#thirdParty !== null) providers.push(this.#thirdParty.provider);
    return new AuthChain(providers);
  }

  #replaceThirdParty(next: { key: string; thirdParty: NonNullable<GatewayRuntimeConfig['thirdParty']> } | null): void {
    const old = this.#thirdParty?.provider;
    if (old instanceof HttpsAuthenticator) void old.close();
    if (next === null) {
      this.#thirdParty = null;
      return;
    }
    const provider = next.thirdParty.provider === 'FUNCTION'
      ? new FunctionAuthenticator(next.thirdParty.functionName, this.#deps.functionScripts)
      : new HttpsAuthenticator(next.thirdParty, this.#log);
    this.#thirdParty = { key: next.key, provider };
  }

  async #listen(port: number): Promise<tls.Server> {
    const server = tls.createServer({ handshakeTimeout: this.broker.options.handshakeTimeoutMs, ...tlsOptionsFor(this.#config) }, (socket) => {
      if (this.#certificates.admit(socket)) this.broker.handle(socket);
    });
    this.#certificates.attach(server);
    guardTlsServer(server, this.broker, (err, socket) => {
      this.#log.info({ remoteAddress: socket.remoteAddress, reason: err.code ?? err.message.slice(0, 200) }, 'tls_handshake_refused');
      this.#events.handshakeFailed(socket, err.code ?? err.message);
    });
    await this.#ports.listen(server, this.#config.id, port, this.#deps.host);
    server.on('error', (err) => this.#log.error({ err }, 'gateway_listener_error'));
    this.#certificates.start();
    return server;
  }

  /**
   * The certificate step of the CONNECT pipeline (client OCSP before the auth chain and CONNACK), then
   * the chain; an accepted device carries its certificate facts in its identity.
   */
  async #checkCertificateThenAuthenticate(req: ConnectRequest): Promise<AuthResult> {
    const step = await this.#certificates.beforeConnect(req.socket);
    if (!step.ok) {
      this.#authStats.denied++;
      this.#log.info({ clientId: logText(req.clientId), username: logText(req.username), remoteAddress: req.remoteAddress, reason: step.reason }, 'connect_denied');
      this.#events.refused(req, certificateStepReason(step.reason), step.reason, step.reasonCode);
      return { ok: false, reasonCode: step.reasonCode };
    }
    const result = await this.#authenticate(req);
    if (!result.ok) return result;
    const { identity, deviceRules, stateReadAt } = result;
    const withCertificate: DeviceIdentity = step.certificate === undefined ? identity : { ...identity, certificate: step.certificate.info };
    // Placeholders are filled once here, with every fact of the CONNECT known [issue 13].
    const access: SessionAccess = {
      acl: this.#compileAcl(withCertificate, deviceRules, req.username, req.clientId), version: this.#accessVersion, deviceRules, username: req.username, clientId: req.clientId,
    };
    const connected: DeviceIdentity = { ...withCertificate, access };
    this.#stateReadAt.set(connected, stateReadAt);
    // The device owns its sessions: another device presenting the same client id is refused 0x85 (broker CONNECT step).
    return { ok: true, identity: connected, owner: identity.deviceName };
  }

  #compileAcl(identity: DeviceIdentity, deviceRules: readonly AclRule[], username: string | undefined, clientId: string): SessionAcl {
    const { defaultAction, rules } = this.#config.accessControl;
    return compileSessionAcl(deviceRules.length === 0 ? rules : [...deviceRules, ...rules], defaultAction, {
      deviceName: identity.deviceName, username, clientId, productKey: identity.productKey, 'cert.cn': identity.certificate?.cn ?? undefined,
    });
  }

  /**
   * The gateway's rules changed: every session whose device is known (connected, or offline with the
   * facts of its last CONNECT) gets them for its next packet, loses the subscriptions they now refuse and
   * the messages it still owes on topics it may no longer read. A session restored after a restart is
   * judged when its device reconnects (`#deviceConnected`).
   */
  #recompileAccess(): void {
    this.#accessVersion++;
    for (const session of this.broker.sessions()) {
      const identity = session.identity as DeviceIdentity | undefined;
      const access = identity?.access;
      if (identity === undefined || access === undefined) continue;
      this.#recompile(identity, access);
      this.#revokeRefused(session, access.acl);
    }
    this.#log.info({ rules: this.#config.accessControl.rules.length, defaultAction: this.#config.accessControl.defaultAction }, 'access_control_applied');
  }

  #recompile(identity: DeviceIdentity, access: SessionAccess): void {
    access.acl = this.#compileAcl(identity, access.deviceRules, access.username, access.clientId);
    access.version = this.#accessVersion;
  }

  /**
   * What a session holds from before its rules allowed less (a live edit, or a session resumed under
   * rules changed while it was away) would keep reaching the device: subscriptions SUBSCRIBE now refuses
   * are removed, and the messages it still owes on topics it could not subscribe to now are dropped and
   * counted (as Mosquitto re-checks a reconnecting client's queued messages against its ACL).
   */
  #revokeRefused(session: Session, acl: SessionAcl): void {
    if (acl.allowsEverything) return;
    if (session.subscriptionCount > 0) {
      for (const sub of [...session.subscriptions.values()]) {
        if (acl.canSubscribe(sub.filter)) continue;
        this.broker.unsubscribe(sub);
        this.#aclRefusals.revoked++;
        this.#log.info({ clientId: logText(session.clientId), filter: logText(sub.raw) }, 'subscription_removed_by_access_control');
      }
    }
    const readable = new Map<string, boolean>(); // a queue holds few distinct topics: one rule walk each
    const dropped = session.dropMessages((m) => {
      let ok = readable.get(m.topic);
      if (ok === undefined) readable.set(m.topic, (ok = acl.canSubscribe(m.topic)));
      return !ok;
    });
    if (dropped === 0) return;
    this.#aclRefusals.delivery += dropped;
    this.#log.info({ clientId: logText(session.clientId), dropped }, 'messages_dropped_by_access_control');
  }

  /** A message owed to a session that moved here without the subscription it was queued for: the rules as in #revokeRefused. */
  #mayReceive(identity: unknown, topic: string): boolean {
    const acl = (identity as DeviceIdentity | undefined)?.access?.acl;
    if (acl === undefined || acl.allowsEverything || acl.canSubscribe(topic)) return true;
    this.#aclRefusals.delivery++;
    return false;
  }

  #authorizePublish(client: ClientInfo, topic: string): number {
    const access = (client.identity as DeviceIdentity | undefined)?.access;
    if (access === undefined || access.acl.canPublish(topic)) return RC.SUCCESS;
    this.#aclRefusals.publish++;
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ clientId: logText(client.clientId), topic: logText(topic) }, 'publish_refused_by_access_control');
    return RC.NOT_AUTHORIZED; // v5 PUBACK/PUBREC 0x87; v3.1.1: acknowledged and dropped, as Mosquitto does
  }

  #authorizeSubscribe(client: ClientInfo, raw: string, qos: QoS): number {
    const access = (client.identity as DeviceIdentity | undefined)?.access;
    if (access === undefined) return qos;
    // A shared subscription is checked on its filter: `$share/g/#` is as wide as `#` [MQTT-4.8.2-1].
    const shared = parseSharedFilter(raw);
    const filter = shared === null || shared === 'invalid' ? raw : shared.filter;
    if (access.acl.canSubscribe(filter)) return qos;
    this.#aclRefusals.subscribe++;
    this.#log.info({ clientId: logText(client.clientId), filter: logText(raw) }, 'subscribe_refused_by_access_control');
    return RC.NOT_AUTHORIZED; // v5 SUBACK 0x87 for this filter; v3.1.1 0x80
  }

  /**
   * The throttle step, then the chain: an attempt first waits its turn (one at a time per username and
   * address pair, bounded per username and per address) and the delay its pair's or address's past
   * failures earned, and only then costs a hash or an outbound call (issue 13). Attempts beyond the
   * queues are refused at once with 0x9F (v3.1.1: 3).
   */
  async #authenticate(req: ConnectRequest): Promise<ChainOutcome> {
    // On a cluster node an attempt homed on another node is judged as of its connection's arrival here: neither the
    // hop to the home nor this node's own delay in reading the CONNECT may let in a guess of connections opened
    // together (an attacker who opens them all, then guesses on each, gets the surplus refused wherever it lands).
    const turn = await (this.#deps.clusterThrottles === undefined ? this.#throttle.enter(req.username, req.remoteAddress)
      : this.#throttle.enter(req.username, req.remoteAddress, req.acceptedAt));
    if (turn === null) {
      this.#authStats.denied++;
      this.#log.info({ clientId: logText(req.clientId), username: logText(req.username), remoteAddress: req.remoteAddress, reason: 'too_many_attempts' }, 'connect_throttled');
      this.#events.refused(req, 'THROTTLED', 'too_many_attempts', RC.CONNECTION_RATE_EXCEEDED);
      return { ok: false, reasonCode: RC.CONNECTION_RATE_EXCEEDED };
    }
    let outcome: 'success' | 'failure' | 'other' = 'other';
    try {
      const chainStartedAt = this.#deviceChanges.now;
      const decision = await this.#runChain(req);
      if (decision.kind === 'allow') outcome = 'success';
      else if (decision.kind === 'deny') outcome = 'failure';
      return await this.#decide(req, decision, chainStartedAt);
    } finally {
      turn.finish(outcome);
    }
  }

  #runChain(req: ConnectRequest): Promise<Decision> {
    return this.#chain.authenticate({
      clientId: req.clientId,
      username: req.username,
      password: req.password,
      protocolVersion: req.protocolVersion,
      remoteAddress: req.remoteAddress,
      userProperties: req.properties?.userProperties,
      socket: req.socket instanceof tls.TLSSocket ? req.socket : undefined,
      certificate: this.#certificates.certificateOf(req.socket)?.info,
    });
  }

  async #decide(req: ConnectRequest, decision: Decision, chainStartedAt: number): Promise<ChainOutcome> {
    // Device-supplied text is bounded in logs; a reason (a function's message) never carries the password.
    const who = { clientId: logText(req.clientId), username: logText(req.username), remoteAddress: req.remoteAddress };
    const reasonOf = (reason: string): string | undefined => logText(reason, { secret: req.password });
    switch (decision.kind) {
      case 'allow': {
        // A third-party answer names the device; a name outside the rules is refused before CONNACK.
        if (checkedDeviceName(decision.deviceName) === undefined) {
          this.#authStats.denied++;
          this.#log.info({ ...who, reason: 'device_name_invalid', deviceName: decision.deviceName.slice(0, 80) }, 'connect_denied');
          this.#events.refused(req, 'DEVICE_NAME_INVALID', `deviceName ${JSON.stringify(decision.deviceName.slice(0, 80))}`, RC.BAD_USER_NAME_OR_PASSWORD);
          return { ok: false, reasonCode: RC.BAD_USER_NAME_OR_PASSWORD };
        }
        const refusal = await this.#checkDeviceState(decision.deviceName, chainStartedAt);
        if (refusal !== null) {
          this.#authStats.denied++;
          this.#log.info({ ...who, reason: refusal.reason, deviceName: decision.deviceName }, 'connect_denied');
          this.#events.refused(req, refusal.reason === 'device_disabled' ? 'DEVICE_DISABLED' : 'UNKNOWN_DEVICE', refusal.reason, refusal.reasonCode, decision.deviceName);
          return { ok: false, reasonCode: refusal.reasonCode };
        }
        this.#authStats.allowed++;
        const identity: DeviceIdentity = { gatewayId: this.#config.id, productKey: this.#config.productKey, deviceName: decision.deviceName };
        return { ok: true, identity, deviceRules: decision.acl ?? [], stateReadAt: this.#deviceChanges.now };
      }
      case 'deny': {
        this.#authStats.denied++;
        this.#log.info({ ...who, reason: reasonOf(decision.reason) }, 'connect_denied');
        this.#events.refused(req, denyReason(this.#provider(), decision.reason), decision.reason, decision.reasonCode);
        return { ok: false, reasonCode: decision.reasonCode };
      }
      case 'unavailable':
        this.#authStats.unavailable++;
        this.#log.warn({ ...who, reason: reasonOf(decision.reason) }, 'auth_backend_unavailable');
        this.#events.refused(req, unavailableReason(this.#provider()), decision.reason, RC.SERVER_UNAVAILABLE);
        return { ok: false, reasonCode: RC.SERVER_UNAVAILABLE };
      case 'ignore':
        this.#events.refused(req, 'BAD_CREDENTIALS', 'no_authenticator_accepted', RC.NOT_AUTHORIZED);
        return { ok: false, reasonCode: RC.NOT_AUTHORIZED };
    }
  }

  /**
   * The device-state step, after the chain: disabled means disabled whoever verified the device (issue 13),
   * and what the chain read before its slow step must still hold. One-party rows carry the state and were
   * read when the chain started: only a device the operator changed since then is read again (the hot path
   * reads nothing). A third-party accept (maybe cached) knows nothing of the state: it is always read.
   * A change landing while the read is in flight makes it read again.
   */
  async #checkDeviceState(deviceName: string, chainStartedAt: number): Promise<{ reasonCode: number; reason: string } | null> {
    if (this.#config.authType !== 'THIRD_PARTY' && !this.#deviceChanges.changedSince(deviceName, chainStartedAt)) return null;
    for (;;) {
      const readAt = this.#deviceChanges.now;
      const device = await this.#deps.directory.findDevice(this.#config.productKey, deviceName);
      if (!this.#deviceChanges.changedSince(deviceName, readAt)) return this.#refusal(device);
    }
  }

  #provider(): Provider {
    return this.#config.authType === 'THIRD_PARTY' ? this.#config.thirdParty?.provider ?? null : null;
  }

  #deviceConnected(client: ClientInfo): void {
    const identity = client.identity as DeviceIdentity | undefined;
    if (identity === undefined) return;
    this.#events.accepted(client, identity);
    // The operator changed the device between the state step and now (the last hops to CONNACK): its
    // kick found no connection yet, so it is judged again now that there is one.
    const stateReadAt = this.#stateReadAt.get(identity);
    if (stateReadAt !== undefined && this.#deviceChanges.changedSince(identity.deviceName, stateReadAt)) this.#disconnectIfRefused(identity.deviceName, 'changed_while_connecting');
    const access = identity.access;
    if (access !== undefined) {
      // Rules changed between the compile at CONNECT and now: compile again before anything is delivered.
      if (access.version !== this.#accessVersion) this.#recompile(identity, access);
      // Emitted before the session resumes: what it holds is judged before any of it is sent.
      const session = this.broker.getSession(client.clientId);
      if (session !== undefined) this.#revokeRefused(session, access.acl);
    }
    const at = new Date();
    const clientAddress = client.remoteAddress ?? null;
    // Told even if the record fails: the device is connected all the same.
    const recorded = this.#record(identity.deviceName, () => this.#deps.directory.recordDeviceConnected(identity.productKey, identity.deviceName, {
      clientAddress, at, ...(identity.certificate !== undefined ? { certificate: identity.certificate } : {}),
    }).then(() => true));
    this.#tellPresence({ type: 'online', identity, at, clientAddress, recorded });
  }

  #deviceDisconnected(client: ClientInfo, reason: string): void {
    const identity = client.identity as DeviceIdentity | undefined;
    if (identity === undefined) return;
    this.#log.debug({ deviceName: identity.deviceName, reason }, 'device_offline');
    const at = new Date();
    const recorded = this.#record(identity.deviceName, () => this.#deps.directory.recordDeviceDisconnected(identity.productKey, identity.deviceName, { at }));
    this.#tellPresence({ type: 'offline', identity, at, clientAddress: null, recorded });
  }

  /** Listens to the gateway's devices coming online and going offline (returns the unsubscribe). */
  observePresence(listener: (presence: DevicePresence) => void): () => void {
    this.#presenceListeners.add(listener);
    return () => this.#presenceListeners.delete(listener);
  }

  #tellPresence(presence: DevicePresence): void {
    for (const listener of this.#presenceListeners) listener(presence);
  }

  /**
   * Writes a device's presence after its previous write settled. Resolves whether it was recorded; a failed write
   * is logged and counts as recorded (what the engine saw is still told).
   */
  #record(deviceName: string, write: () => Promise<boolean>): Promise<boolean> {
    const guarded = (): Promise<boolean> => write().catch((err: unknown) => {
      this.#log.error({ err, deviceName }, 'device_state_update_failed');
      return true;
    });
    const previous = this.#recording.get(deviceName);
    const recorded = previous === undefined ? guarded() : previous.then(guarded);
    this.#recording.set(deviceName, recorded);
    void recorded.then(() => {
      if (this.#recording.get(deviceName) === recorded) this.#recording.delete(deviceName);
    });
    return recorded;
  }
}
