/** Prometheus gauges and counters of the running gateways, read from engine counters at scrape time. */
import { Gauge, type Registry } from 'prom-client';
import type { BrokerStats } from '../broker/index.ts';
import type { GatewayRuntime } from './runtime.ts';
import type { ThirdPartyStats } from './auth/third-party.ts';
import { GATEWAY_LIMIT_NAMES } from '../registry/gateway-limits.ts';
import { daysLeft } from '../registry/index.ts';

const COUNTERS: readonly (keyof BrokerStats)[] = [
  'connectionsAccepted', 'connectsRefused', 'messagesReceived', 'messagesDelivered', 'droppedOffline',
  'droppedSlowConsumer', 'droppedQueueFull', 'droppedExpired', 'droppedTooLarge', 'droppedUnauthorized', 'droppedInvalidPayload',
  'droppedRetainedQuota', 'droppedRetainedBacklog', 'protocolErrors', 'subscriptionsRefused', 'socketsRefused', 'handlerCrashes',
  'connectsOverConnectionLimit', 'connectsOverSessionLimit', 'publishesPaced', 'readsPausedForWrites', 'subscriptionsOverLimit', 'packetsTooLarge', 'sessionExpiryLowered',
  'connectsRefusedClusterUnreachable', 'publishesRefusedClusterUnreachable', 'publishesRefusedClusterStream', 'publishesRefusedClusterUnwritable',
  'clusterCutOffDisconnects',
  'sessionsMovedAway', 'connectsLostSessionClaim', 'clusterWillsPublished', 'sharedRepicked', 'sharedUndeliverable', 'clusterSessionsResumed',
];

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function registerGatewayMetrics(registry: Registry, runtime: GatewayRuntime): void {
  // Values are copied from the engines when Prometheus scrapes, so the message path only bumps plain fields.
  const refresh = (): void => {
    for (const g of [info, connected, sessions, retained, auth, aclRefusals, limit, limitUse, limitHits, certificateDays, ...counters.values(), ...ocspGauges, ...thirdPartyGauges]) g.reset();
    const now = new Date();
    for (const instance of runtime.instances()) {
      const gateway = instance.config.name;
      info.set({ gateway, gateway_id: instance.config.id }, 1);
      // The soonest expiry of each certificate field: alert on it before devices start failing the handshake.
      const { serverCertificateChain, deviceRootCertificates, trustedCertificate } = instance.config.certificates;
      for (const [certificate, pem] of [
        ['serverCertificateChain', serverCertificateChain], ['deviceRootCertificates', deviceRootCertificates], ['trustedCertificate', trustedCertificate],
      ] as const) {
        if (pem === null) continue;
        const days: number[] = daysLeft(pem, now);
        if (days.length > 0) certificateDays.set({ gateway, certificate }, Math.min(...days));
      }
      const broker = instance.broker;
      // This process's: a scrape of several processes sums them (the API's connectedClients is the cluster's).
      connected.set({ gateway }, broker.connectedCount);
      sessions.set({ gateway }, broker.sessionCount);
      retained.set({ gateway }, broker.retained.size);
      for (const [result, n] of Object.entries(instance.authStats)) auth.set({ gateway, result }, n);
      for (const [access, n] of Object.entries(instance.aclRefusals)) aclRefusals.set({ gateway, access }, n);
      for (const [name, gauge] of counters) gauge.set({ gateway }, broker.stats[name]);
      // Each limit the running gateway applies, its use now and its refusals (issue 13); a null limit has no value.
      const usage = instance.limitsUsage();
      for (const name of GATEWAY_LIMIT_NAMES) {
        const value = instance.config.limits[name];
        if (value !== null) limit.set({ gateway, limit: name }, value);
        // Per process, as every series here: maxConnections' cluster-wide use (the API's) would be counted once per
        // node by a sum over nodes or workers; this process's connections and refusals sum to the machine's.
        const use = name === 'maxConnections' ? { current: broker.connectedCount, hits: broker.stats.connectsOverConnectionLimit } : usage[name];
        if (use.current !== null) limitUse.set({ gateway, limit: name }, use.current);
        limitHits.set({ gateway, limit: name }, use.hits);
      }
      const third = instance.thirdPartyStats;
      if (third !== null) refreshThirdParty(gateway, third);
      const ocsp = instance.ocspState;
      if (ocsp !== undefined) {
        for (const [reason, n] of Object.entries(ocsp.x509Refusals)) x509Refusals.set({ gateway, reason }, n);
        if (ocsp.server !== null) {
          const s = ocsp.server;
          stapling.set({ gateway }, s.stapling ? 1 : 0);
          if (s.ageSeconds !== null) stapleAge.set({ gateway }, s.ageSeconds);
          if (s.nextRefreshAt !== null) nextRefresh.set({ gateway }, Math.max(0, (Date.parse(s.nextRefreshAt) - Date.now()) / 1000));
          staplesServed.set({ gateway }, s.staplesServed);
          for (const [kind, n] of Object.entries(s.responderErrors)) responderErrors.set({ gateway, side: 'server', kind }, n);
        }
        if (ocsp.client !== null) {
          const c = ocsp.client;
          for (const [result, n] of Object.entries(c.checks)) clientChecks.set({ gateway, result }, n);
          cacheHits.set({ gateway }, c.cacheHits);
          revokedConnected.set({ gateway }, c.revokedWhileConnected);
          for (const [kind, n] of Object.entries(c.responderErrors)) responderErrors.set({ gateway, side: 'client', kind }, n);
        }
      }
    }
  };
  const connected = new Gauge({
    name: 'gatehouse_gateway_connected_clients', help: 'Connected MQTT clients per gateway', labelNames: ['gateway'], registers: [registry],
    collect: refresh,
  });
  const certificateDays = new Gauge({
    name: 'gatehouse_gateway_certificate_expiry_days',
    help: 'Whole days until the soonest-expiring certificate of each field expires (negative once expired), per running gateway',
    labelNames: ['gateway', 'certificate'], registers: [registry],
    // Every worker of GATEHOUSE_WORKERS holds the same certificates: a machine-wide scrape takes the value once.
    aggregator: 'min',
  });
  const info = new Gauge({
    name: 'gatehouse_gateway_info', help: 'Each running gateway, its name (the other series\' label) with its id (the API\'s): always 1',
    labelNames: ['gateway', 'gateway_id'], registers: [registry],
    aggregator: 'first', // every worker runs the same gateways
  });
  const sessions = new Gauge({ name: 'gatehouse_gateway_sessions', help: 'MQTT sessions (connected and persistent) per gateway', labelNames: ['gateway'], registers: [registry] });
  const retained = new Gauge({ name: 'gatehouse_gateway_retained_messages', help: 'Retained messages per gateway', labelNames: ['gateway'], registers: [registry] });
  const auth = new Gauge({ name: 'gatehouse_gateway_auth_total', help: 'CONNECT verification outcomes per gateway (since the listener started)', labelNames: ['gateway', 'result'], registers: [registry] });
  const aclRefusals = new Gauge({
    name: 'gatehouse_gateway_acl_refusals_total',
    help: 'Topic access control per gateway: PUBLISH (a v3.1.1 one acknowledged and dropped) and SUBSCRIBE filters refused; subscriptions removed (revoked) and owed messages dropped (delivery) after the rules changed',
    labelNames: ['gateway', 'access'],
    registers: [registry],
  });
  const limit = new Gauge({
    name: 'gatehouse_gateway_limit', help: 'A limit of the gateway as it applies now (absent: no limit)', labelNames: ['gateway', 'limit'], registers: [registry],
    aggregator: 'first', // the same configuration on every worker
  });
  const limitUse = new Gauge({
    name: 'gatehouse_gateway_limit_use',
    help: 'Use against each limit now: connections, retained topics, and for per-device limits the most any one session, device or address holds',
    labelNames: ['gateway', 'limit'],
    registers: [registry],
  });
  const limitHits = new Gauge({
    name: 'gatehouse_gateway_limit_hits_total',
    help: 'Times each limit refused or paced (CONNECTs, SUBSCRIBE filters, retained messages, pauses of a device\'s reads …) since the listener started',
    labelNames: ['gateway', 'limit'],
    registers: [registry],
  });
  const counters = new Map(COUNTERS.map((c) => [c, new Gauge({
    name: `gatehouse_gateway_${snake(c)}_total`,
    help: `Engine counter ${c} per gateway (since the listener started)`,
    labelNames: ['gateway'],
    registers: [registry],
  })]));
  // OCSP and X.509 (issue 4): stapling of the server certificate, device-certificate checks.
  const gauge = (name: string, help: string, labelNames: string[] = []): Gauge =>
    new Gauge({ name, help, labelNames: ['gateway', ...labelNames], registers: [registry] });
  const stapling = gauge('gatehouse_gateway_ocsp_stapling', '1 while a fresh, verified good OCSP response is stapled to handshakes');
  const stapleAge = gauge('gatehouse_gateway_ocsp_staple_age_seconds', 'Seconds since thisUpdate of the kept server OCSP response');
  const nextRefresh = gauge('gatehouse_gateway_ocsp_staple_next_refresh_seconds', 'Seconds until the server OCSP response is fetched again');
  const staplesServed = gauge('gatehouse_gateway_ocsp_staples_served_total', 'Handshakes that got an OCSP response stapled');
  const responderErrors = gauge('gatehouse_gateway_ocsp_responder_errors_total', 'OCSP responder failures by side (server stapling, client checks) and kind', ['side', 'kind']);
  const clientChecks = gauge('gatehouse_gateway_ocsp_client_checks_total', 'Device-certificate OCSP checks by result (good, revoked, unknown, responder_error)', ['result']);
  const cacheHits = gauge('gatehouse_gateway_ocsp_client_cache_hits_total', 'Device-certificate OCSP checks answered from the cache');
  const revokedConnected = gauge('gatehouse_gateway_ocsp_revoked_disconnects_total', 'Connected devices disconnected because their certificate became revoked');
  const x509Refusals = gauge('gatehouse_gateway_x509_refusals_total', 'TLS connections refused for their client certificate, by reason', ['reason']);
  const ocspGauges = [stapling, stapleAge, nextRefresh, staplesServed, responderErrors, clientChecks, cacheHits, revokedConnected, x509Refusals];
  // Third-party verification (issue 5): the function or HTTPS provider of each gateway. Registered after
  // `connected`, whose collect() refreshes every gauge: prom-client collects in registration order.
  const thirdPartyGauge = (name: string, help: string, labelNames: string[]): Gauge =>
    new Gauge({ name: `gatehouse_gateway_third_party_${name}`, help, labelNames: ['gateway', ...labelNames], registers: [registry] });
  const thirdCalls = thirdPartyGauge('calls_total', 'Third-party verification answers by result (accept, reject, failure), cache hits included', ['provider', 'result']);
  const thirdFailures = thirdPartyGauge('failures_total', 'Third-party verification failures by kind (timeout, http_5xx, network, bad_response, breaker_open, memory, threw …)', ['provider', 'kind']);
  const thirdCacheHits = thirdPartyGauge('cache_hits_total', 'HTTPS verification answers served from the cache, by cached result', ['result']);
  const thirdBreaker = thirdPartyGauge('breaker_state', 'Circuit breaker of the HTTPS verification service: 1 for the current state (closed, open, half_open)', ['state']);
  const thirdBreakerOpened = thirdPartyGauge('breaker_opened_total', 'Times the circuit breaker of the HTTPS verification service opened', []);
  const thirdPartyGauges = [thirdCalls, thirdFailures, thirdCacheHits, thirdBreaker, thirdBreakerOpened];
  const refreshThirdParty = (gateway: string, stats: ThirdPartyStats): void => {
    const { provider } = stats;
    for (const [result, n] of Object.entries(stats.calls)) thirdCalls.set({ gateway, provider, result }, n);
    for (const [kind, n] of Object.entries(stats.failures)) thirdFailures.set({ gateway, provider, kind }, n);
    if (provider !== 'HTTPS') return;
    for (const [result, n] of Object.entries(stats.cacheHits)) thirdCacheHits.set({ gateway, result }, n);
    for (const state of ['closed', 'open', 'half_open'] as const) thirdBreaker.set({ gateway, state }, stats.breaker === state ? 1 : 0);
    thirdBreakerOpened.set({ gateway }, stats.breakerOpened);
  };
}
