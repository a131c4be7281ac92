/**
 * Every gateway rule of DESIGN.md "Contracts decided" and issue 3, each sent as bad input through the
 * API and checked by code and field.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { getApiCerts, type ApiCerts } from './certs.ts';
import { expectError, gatewayBody, startTestApi, type TestApi, type FunctionJson, type GatewayJson, type ErrorJson } from './helpers.ts';

let api: TestApi;
let certs: ApiCerts;
/** Moves the registry's clock (certificate dates are checked against it). */
let clockOffsetMs = 0;

before(async () => {
  certs = await getApiCerts();
  api = await startTestApi({ now: () => new Date(Date.now() + clockOffsetMs) });
  const fn = await api.call<FunctionJson>('POST', '/api/v1/functions', { json: { name: 'verify_signed', source: 'function handler(event) { return { result: "true" }; }' } });
  assert.equal(fn.status, 201, fn.body);
}, { timeout: 60_000 });
after(async () => {
  await api.close();
  await certs.dispose();
}, { timeout: 30_000 });

let port = 20_000;
/** A valid body with a fresh name and port, overridden by the test. */
function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  port++;
  return gatewayBody(certs, { name: `gw_${port}`, port, ...overrides });
}

function withCerts(certificates: Record<string, unknown>): Record<string, unknown> {
  return { certificates: { serverCertificateChain: certs.chain, serverPrivateKey: certs.key, ...certificates } };
}

const create = (json: unknown) => api.call<GatewayJson>('POST', '/api/v1/gateways', { json });

function https(overrides: Record<string, unknown>): Record<string, unknown> {
  return { authType: 'THIRD_PARTY', thirdParty: { provider: 'HTTPS', url: 'https://auth.example.com/verify', ...overrides } };
}

describe('name', () => {
  for (const [why, name] of [['too short', 'abc'], ['too long', 'a'.repeat(31)], ['a hyphen', 'bad-name'], ['a space', 'bad name'], ['non-ASCII', 'gatewäy'], ['empty', '']]) {
    test(`${why} → GW_ERR_GATEWAY_NAME_INVALID`, { timeout: 5_000 }, async () => {
      expectError(await create(body({ name })), 400, 'GW_ERR_GATEWAY_NAME_INVALID', 'name');
    });
  }

  test('4 and 30 characters of letters, digits and underscores are fine', { timeout: 15_000 }, async () => {
    assert.equal((await create(body({ name: 'ab_1' }))).status, 201);
    assert.equal((await create(body({ name: `A${'b'.repeat(28)}9` }))).status, 201);
  });

  test('taken → GW_ERR_GATEWAY_NAME_TAKEN (on create and on rename)', { timeout: 5_000 }, async () => {
    assert.equal((await create(body({ name: 'unique_one' }))).status, 201);
    expectError(await create(body({ name: 'unique_one' })), 409, 'GW_ERR_GATEWAY_NAME_TAKEN', 'name');
    const other = (await create(body({ name: 'unique_two' }))).json;
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${other.id}`, { json: { name: 'unique_one' } }), 409, 'GW_ERR_GATEWAY_NAME_TAKEN', 'name');
    // Keeping one's own name is not a conflict.
    const kept = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${other.id}`, { json: { name: 'unique_two', port: other.port } });
    assert.equal(kept.status, 200);
    assert.equal((await api.call<GatewayJson>('GET', `/api/v1/gateways/${other.id}`)).json.name, 'unique_two');
  });

  test('missing → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    const { name: _name, ...rest } = body();
    expectError(await create(rest), 400, 'GW_ERR_VALIDATION', 'name');
  });
});

describe('protocol and port', () => {
  test('a protocol other than MQTT → GW_ERR_PROTOCOL_UNSUPPORTED', { timeout: 5_000 }, async () => {
    expectError(await create(body({ protocol: 'CoAP' })), 400, 'GW_ERR_PROTOCOL_UNSUPPORTED', 'protocol');
  });

  for (const bad of [0, 80, 1023, 65536, 100_000]) {
    test(`port ${bad} → GW_ERR_PORT_OUT_OF_RANGE`, { timeout: 5_000 }, async () => {
      expectError(await create(body({ port: bad })), 400, 'GW_ERR_PORT_OUT_OF_RANGE', 'port');
    });
  }

  test('ports 1024 and 65535 are fine; 1883 is the default', { timeout: 5_000 }, async () => {
    assert.equal((await create(body({ port: 1024 }))).status, 201);
    assert.equal((await create(body({ port: 65535 }))).status, 201);
  });

  test('a port that is not an integer → GW_ERR_VALIDATION naming it (no string coercion)', { timeout: 5_000 }, async () => {
    expectError(await create(body({ port: '8883' })), 400, 'GW_ERR_VALIDATION', 'port');
    expectError(await create(body({ port: 8883.5 })), 400, 'GW_ERR_VALIDATION', 'port');
  });

  test('taken by another gateway → GW_ERR_PORT_TAKEN (on create and on edit)', { timeout: 5_000 }, async () => {
    const first = (await create(body({ port: 30_100 }))).json;
    expectError(await create(body({ port: 30_100 })), 409, 'GW_ERR_PORT_TAKEN', 'port');
    const second = (await create(body({ port: 30_101 }))).json;
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${second.id}`, { json: { port: first.port } }), 409, 'GW_ERR_PORT_TAKEN', 'port');
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${second.id}`, { json: { port: 70_000 } }), 400, 'GW_ERR_PORT_OUT_OF_RANGE', 'port');
  });
});

describe('authentication type and providers', () => {
  test('an unknown authType → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'TWO_PARTY' })), 400, 'GW_ERR_VALIDATION', 'authType');
  });

  test('THIRD_PARTY without a provider → GW_ERR_PROVIDER_REQUIRED', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'THIRD_PARTY' })), 400, 'GW_ERR_PROVIDER_REQUIRED', 'thirdParty');
  });

  test('a provider with ONE_PARTY → GW_ERR_VALIDATION on thirdParty', { timeout: 5_000 }, async () => {
    expectError(await create(body({ thirdParty: { provider: 'HTTPS', url: 'https://a.example.com' } })), 400, 'GW_ERR_VALIDATION', 'thirdParty');
  });

  test('an unknown provider → GW_ERR_VALIDATION naming thirdParty.provider', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'LDAP' } })), 400, 'GW_ERR_VALIDATION', 'thirdParty.provider');
  });

  test('FUNCTION with an unknown function → GW_ERR_FUNCTION_UNKNOWN; a stored one is accepted', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'nope' } })), 400, 'GW_ERR_FUNCTION_UNKNOWN', 'thirdParty.functionName');
    expectError(await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION' } })), 400, 'GW_ERR_FUNCTION_UNKNOWN', 'thirdParty.functionName');
    const ok = await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'verify_signed' } }));
    assert.equal(ok.status, 201, ok.body);
    assert.deepEqual(ok.json.thirdParty, { provider: 'FUNCTION', functionName: 'verify_signed' });
  });

  test('fields of the other provider → GW_ERR_VALIDATION naming the field', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'FUNCTION', functionName: 'verify_signed', url: 'https://x.example.com' } })), 400, 'GW_ERR_VALIDATION', 'thirdParty.url');
    expectError(await create(body(https({ functionName: 'verify_signed' }))), 400, 'GW_ERR_VALIDATION', 'thirdParty.functionName');
  });

  for (const url of ['http://auth.example.com/verify', 'ftp://auth.example.com', 'auth.example.com/verify', '']) {
    test(`HTTPS url "${url}" → GW_ERR_URL_NOT_HTTPS`, { timeout: 5_000 }, async () => {
      expectError(await create(body(https({ url }))), 400, 'GW_ERR_URL_NOT_HTTPS', 'thirdParty.url');
    });
  }

  test('HTTPS url that does not parse → GW_ERR_URL_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body(https({ url: 'https://' }))), 400, 'GW_ERR_URL_INVALID', 'thirdParty.url');
    expectError(await create(body(https({ url: 'https://exa mple.com/' }))), 400, 'GW_ERR_URL_INVALID', 'thirdParty.url');
  });

  test('HTTPS without url → GW_ERR_URL_NOT_HTTPS', { timeout: 5_000 }, async () => {
    expectError(await create(body({ authType: 'THIRD_PARTY', thirdParty: { provider: 'HTTPS' } })), 400, 'GW_ERR_URL_NOT_HTTPS', 'thirdParty.url');
  });

  test('11 params → GW_ERR_TOO_MANY_PARAMS; 10 are fine', { timeout: 5_000 }, async () => {
    const params = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
    expectError(await create(body(https({ params: params(11) }))), 400, 'GW_ERR_TOO_MANY_PARAMS', 'thirdParty.params');
    assert.equal((await create(body(https({ params: params(10) })))).status, 201);
  });

  test('a signing secret of 15 or 257 characters → GW_ERR_VALIDATION naming it; 16 and 256 are fine (issue 18)', { timeout: 5_000 }, async () => {
    for (const bad of ['s'.repeat(15), 's'.repeat(257), '']) {
      expectError(await create(body(https({ signingSecret: bad }))), 400, 'GW_ERR_VALIDATION', 'thirdParty.signingSecret');
    }
    assert.equal((await create(body(https({ signingSecret: 's'.repeat(16) })))).status, 201);
    assert.equal((await create(body(https({ signingSecret: 's'.repeat(256) })))).status, 201);
    assert.equal((await create(body(https({ signingSecret: null })))).status, 201);
  });

  test('a key or value over 64 characters → GW_ERR_PARAM_TOO_LONG naming which', { timeout: 5_000 }, async () => {
    expectError(await create(body(https({ params: [{ key: 'k'.repeat(65), value: 'v' }] }))), 400, 'GW_ERR_PARAM_TOO_LONG', 'thirdParty.params[0].key');
    expectError(await create(body(https({ params: [{ key: 'a', value: 'b' }, { key: 'k', value: 'v'.repeat(65) }] }))), 400, 'GW_ERR_PARAM_TOO_LONG', 'thirdParty.params[1].value');
    assert.equal((await create(body(https({ params: [{ key: 'k'.repeat(64), value: 'v'.repeat(64) }] })))).status, 201);
  });

  test('an empty, repeated or reserved key → GW_ERR_PARAM_KEY_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body(https({ params: [{ key: '', value: 'v' }] }))), 400, 'GW_ERR_PARAM_KEY_INVALID', 'thirdParty.params[0].key');
    expectError(await create(body(https({ params: [{ key: 'a', value: '1' }, { key: 'a', value: '2' }] }))), 400, 'GW_ERR_PARAM_KEY_INVALID', 'thirdParty.params[1].key');
    expectError(await create(body(https({ params: [{ key: 'password', value: 'x' }] }))), 400, 'GW_ERR_PARAM_KEY_INVALID', 'thirdParty.params[0].key');
  });

  test('a param without value → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    expectError(await create(body(https({ params: [{ key: 'a' }] }))), 400, 'GW_ERR_VALIDATION', 'thirdParty.params[0].value');
  });

  for (const value of ['${user}', '${cert.subject}', '${userProperties.}', '${clientid}', 'x-${username', '${}']) {
    test(`template "${value}" → GW_ERR_TEMPLATE_VARIABLE_UNKNOWN`, { timeout: 5_000 }, async () => {
      expectError(await create(body(https({ params: [{ key: 'p', value }] }))), 400, 'GW_ERR_TEMPLATE_VARIABLE_UNKNOWN', 'thirdParty.params[0].value');
    });
  }

  test('every documented variable is accepted, alone or inside text', { timeout: 5_000 }, async () => {
    const values = ['${username}', '${password}', '${clientId}', '${cert.cn}', '${cert.serial}', '${cert.issuer}', '${userProperties.model}', 'sn:${clientId}/${cert.cn}', 'plain $ {text}'];
    const reply = await create(body(https({ params: values.map((value, i) => ({ key: `p${i}`, value })) })));
    assert.equal(reply.status, 201, reply.body);
  });

  test('a CA certificate for the service that is not PEM → GW_ERR_CERT_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body(https({ caCertificate: 'nope' }))), 400, 'GW_ERR_CERT_INVALID', 'thirdParty.caCertificate');
  });
});

describe('data parsing', () => {
  test('enabled without a script → GW_ERR_SCRIPT_REQUIRED', { timeout: 5_000 }, async () => {
    expectError(await create(body({ dataParsing: { enabled: true } })), 400, 'GW_ERR_SCRIPT_REQUIRED', 'dataParsing.script');
    expectError(await create(body({ dataParsing: { enabled: true, script: '   ' } })), 400, 'GW_ERR_SCRIPT_REQUIRED', 'dataParsing.script');
  });

  test('a script with a syntax error → GW_ERR_SCRIPT_SYNTAX with the line', { timeout: 5_000 }, async () => {
    const error = expectError(await create(body({ dataParsing: { enabled: true, script: 'function transformPayload(topic, bytes) {\n  return {\n}' } })), 400, 'GW_ERR_SCRIPT_SYNTAX', 'dataParsing.script');
    assert.match(error.message, /line \d+/);
  });

  test('a script is kept while parsing is off', { timeout: 10_000 }, async () => {
    const reply = await create(body({ dataParsing: { enabled: false, script: 'function transformPayload() { return {}; }' } }));
    assert.equal(reply.status, 201);
    assert.equal(reply.json.dataParsing.script, 'function transformPayload() { return {}; }');
  });
});

describe('X.509 and OCSP', () => {
  for (const mode of ['CLIENT', 'SERVER_AND_CLIENT']) {
    test(`ocsp ${mode} without X.509 → GW_ERR_OCSP_NEEDS_X509`, { timeout: 5_000 }, async () => {
      expectError(await create(body({ ocsp: { mode }, ...withCerts({ trustedCertificate: certs.root }) })), 400, 'GW_ERR_OCSP_NEEDS_X509', 'ocsp.mode');
    });
  }

  test('ocsp SERVER without X.509 is fine (with the trusted certificate)', { timeout: 5_000 }, async () => {
    assert.equal((await create(body({ ocsp: { mode: 'SERVER' }, ...withCerts({ trustedCertificate: certs.root }) }))).status, 201);
  });

  test('an unknown ocsp mode → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    expectError(await create(body({ ocsp: { mode: 'ALWAYS' } })), 400, 'GW_ERR_VALIDATION', 'ocsp.mode');
  });

  test('X.509 without device roots → GW_ERR_CERT_REQUIRED', { timeout: 5_000 }, async () => {
    expectError(await create(body({ x509: { enabled: true } })), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.deviceRootCertificates');
  });

  for (const mode of ['SERVER', 'SERVER_AND_CLIENT']) {
    test(`ocsp ${mode} without the trusted certificate → GW_ERR_CERT_REQUIRED`, { timeout: 5_000 }, async () => {
      expectError(await create(body({ x509: { enabled: true }, ocsp: { mode }, ...withCerts({ deviceRootCertificates: certs.caBundle }) })), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.trustedCertificate');
    });
  }

  test('device roots that are not CA certificates → GW_ERR_CERT_NOT_CA', { timeout: 5_000 }, async () => {
    expectError(await create(body({ x509: { enabled: true }, ...withCerts({ deviceRootCertificates: certs.leafOnly }) })), 400, 'GW_ERR_CERT_NOT_CA', 'certificates.deviceRootCertificates');
  });

  test('a trusted certificate that is not PEM → GW_ERR_CERT_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body({ ocsp: { mode: 'SERVER' }, ...withCerts({ trustedCertificate: 'garbage' }) })), 400, 'GW_ERR_CERT_INVALID', 'certificates.trustedCertificate');
  });

  test('a trusted certificate unrelated to the chain is a warning', { timeout: 5_000 }, async () => {
    const reply = await create(body({ ocsp: { mode: 'SERVER' }, ...withCerts({ trustedCertificate: certs.pki.rogue.certPem }) }));
    assert.equal(reply.status, 201, reply.body);
    assert.deepEqual(reply.json.warnings.map((w: { code: string; field: string }) => [w.code, w.field]), [['GW_WARN_TRUSTED_CERT_UNRELATED', 'certificates.trustedCertificate']]);
  });
});

describe('server certificate chain and key', () => {
  test('missing chain or key → GW_ERR_CERT_REQUIRED naming which', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.serverCertificateChain');
    expectError(await create(body({ certificates: { serverCertificateChain: certs.chain } })), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.serverPrivateKey');
    expectError(await create(body({ certificates: { serverCertificateChain: '', serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.serverCertificateChain');
  });

  test('no certificates object at all → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    expectError(await create({ name: 'no_certs_gw', port: 30_200 }), 400, 'GW_ERR_VALIDATION', 'certificates');
  });

  test('text that is not PEM → GW_ERR_CERT_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: 'hello', serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_INVALID', 'certificates.serverCertificateChain');
    const corrupt = certs.chain.replace(/^(-----BEGIN CERTIFICATE-----\n)MII/, '$1XXX');
    expectError(await create(body({ certificates: { serverCertificateChain: corrupt, serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_INVALID', 'certificates.serverCertificateChain');
  });

  test('a private key pasted into a certificate field → GW_ERR_CERT_INVALID (it would be returned in the clear)', { timeout: 5_000 }, async () => {
    const error = expectError(await create(body({ certificates: { serverCertificateChain: certs.chain + certs.key, serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_INVALID', 'certificates.serverCertificateChain');
    assert.match(error.message, /PRIVATE KEY block/);
    expectError(await create(body({ ocsp: { mode: 'SERVER' }, ...withCerts({ trustedCertificate: certs.key }) })), 400, 'GW_ERR_CERT_INVALID', 'certificates.trustedCertificate');
  });

  test('a chain given root first → GW_ERR_CERT_CHAIN_REVERSED, and the message says so', { timeout: 5_000 }, async () => {
    const error = expectError(await create(body({ certificates: { serverCertificateChain: certs.reversedChain, serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_CHAIN_REVERSED', 'certificates.serverCertificateChain');
    assert.match(error.message, /reverse order/);
  });

  test('a chain whose next certificate did not issue the previous → GW_ERR_CERT_CHAIN_BROKEN', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: certs.brokenChain, serverPrivateKey: certs.key } })), 400, 'GW_ERR_CERT_CHAIN_BROKEN', 'certificates.serverCertificateChain');
  });

  test('a key that does not match the leaf → GW_ERR_KEY_MISMATCH', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: certs.chain, serverPrivateKey: certs.wrongKey } })), 400, 'GW_ERR_KEY_MISMATCH', 'certificates.serverPrivateKey');
  });

  test('a key that is not a key, or is encrypted → GW_ERR_KEY_INVALID', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: certs.chain, serverPrivateKey: 'not a key' } })), 400, 'GW_ERR_KEY_INVALID', 'certificates.serverPrivateKey');
    const error = expectError(await create(body({ certificates: { serverCertificateChain: certs.chain, serverPrivateKey: certs.encryptedKey } })), 400, 'GW_ERR_KEY_INVALID', 'certificates.serverPrivateKey');
    assert.match(error.message, /encrypted/);
  });

  test('an expired certificate → GW_ERR_CERT_EXPIRED', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: certs.expiredChain, serverPrivateKey: certs.expiredKey } })), 400, 'GW_ERR_CERT_EXPIRED', 'certificates.serverCertificateChain');
  });

  test('a certificate not yet valid → GW_ERR_CERT_NOT_YET_VALID', { timeout: 5_000 }, async () => {
    expectError(await create(body({ certificates: { serverCertificateChain: certs.notYetValidChain, serverPrivateKey: certs.notYetValidKey } })), 400, 'GW_ERR_CERT_NOT_YET_VALID', 'certificates.serverCertificateChain');
  });

  test('a certificate expiring within 30 days is saved with a warning', { timeout: 5_000 }, async () => {
    const reply = await create(body({ certificates: { serverCertificateChain: certs.expiringSoonChain, serverPrivateKey: certs.expiringSoonKey } }));
    assert.equal(reply.status, 201, reply.body);
    const [warning, ...others] = reply.json.warnings;
    assert.deepEqual(others, []);
    assert.equal(warning?.code, 'GW_WARN_CERT_EXPIRES_SOON');
    assert.equal(warning.field, 'certificates.serverCertificateChain');
    assert.match(warning.message, /in (9|10) days/);
  });

  test('a chain of the leaf alone, with its key, is accepted; PEM is stored normalised', { timeout: 5_000 }, async () => {
    const reply = await create(body({ certificates: { serverCertificateChain: `Subject: some text openssl printed\n${certs.leafOnly}\n\n`, serverPrivateKey: certs.key } }));
    assert.equal(reply.status, 201, reply.body);
    assert.equal(reply.json.certificates.serverCertificateChain, certs.leafOnly);
  });

  test('replacing the chain alone must still match the stored key', { timeout: 5_000 }, async () => {
    const gw = (await create(body())).json;
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { certificates: { serverCertificateChain: certs.rotatedChain } } }), 400, 'GW_ERR_KEY_MISMATCH', 'certificates.serverPrivateKey');
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { certificates: { serverPrivateKey: certs.rotatedKey } } }), 400, 'GW_ERR_KEY_MISMATCH', 'certificates.serverPrivateKey');
  });

  test('a stored certificate that has expired since does not block a rename, but comes back as a warning', { timeout: 5_000 }, async () => {
    const gw = (await create(body({ certificates: { serverCertificateChain: certs.expiringSoonChain, serverPrivateKey: certs.expiringSoonKey } }))).json;
    clockOffsetMs = 20 * 86_400_000;
    try {
      const renamed = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { name: `renamed_${gw.port}` } });
      assert.equal(renamed.status, 200, renamed.body);
      assert.deepEqual(renamed.json.warnings.map((w: { code: string }) => w.code), ['GW_WARN_CERT_EXPIRED']);
      // Saving the certificate itself again is held to the strict rule.
      expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { certificates: { serverCertificateChain: certs.expiringSoonChain } } }), 400, 'GW_ERR_CERT_EXPIRED', 'certificates.serverCertificateChain');
    } finally {
      clockOffsetMs = 0;
    }
  });

  test('clearing device roots while X.509 stays on → GW_ERR_CERT_REQUIRED', { timeout: 5_000 }, async () => {
    const gw = (await create(body({ x509: { enabled: true }, ...withCerts({ deviceRootCertificates: certs.caBundle }) }))).json;
    expectError(await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { certificates: { deviceRootCertificates: null } } }), 400, 'GW_ERR_CERT_REQUIRED', 'certificates.deviceRootCertificates');
    const off = await api.call<GatewayJson>('PATCH', `/api/v1/gateways/${gw.id}`, { json: { x509: { enabled: false }, certificates: { deviceRootCertificates: null } } });
    assert.equal(off.status, 200, off.body);
    assert.equal(off.json.certificates.deviceRootCertificates, null);
  });
});

describe('request shape', () => {
  test('an unknown field → GW_ERR_VALIDATION naming it', { timeout: 5_000 }, async () => {
    expectError(await create(body({ colour: 'blue' })), 400, 'GW_ERR_VALIDATION', 'colour');
    expectError(await create(body({ ocsp: { mode: 'DISABLED', extra: true } })), 400, 'GW_ERR_VALIDATION', 'ocsp.extra');
  });

  test('read-only fields are not accepted', { timeout: 5_000 }, async () => {
    expectError(await create(body({ id: 'mine' })), 400, 'GW_ERR_VALIDATION', 'id');
    expectError(await create(body({ status: 'RUNNING' })), 400, 'GW_ERR_VALIDATION', 'status');
  });

  test('wrong types → GW_ERR_VALIDATION naming the field', { timeout: 5_000 }, async () => {
    expectError(await create(body({ x509: { enabled: 'yes' } })), 400, 'GW_ERR_VALIDATION', 'x509.enabled');
    expectError(await create(body({ dataParsing: { enabled: 1 } })), 400, 'GW_ERR_VALIDATION', 'dataParsing.enabled');
    expectError(await create(body(https({ params: 'sn=1' }))), 400, 'GW_ERR_VALIDATION', 'thirdParty.params');
  });

  test('malformed JSON → GW_ERR_VALIDATION', { timeout: 5_000 }, async () => {
    const reply = await api.call<GatewayJson>('POST', '/api/v1/gateways', { headers: { 'content-type': 'application/json' }, csv: '{"name": ' });
    expectError(reply, 400, 'GW_ERR_VALIDATION');
  });

  test('a body type the route does not take → GW_ERR_UNSUPPORTED_MEDIA_TYPE', { timeout: 5_000 }, async () => {
    const reply = await api.app.inject({ method: 'POST', url: '/api/v1/gateways', headers: { authorization: 'Bearer test-admin-token-0123456789abcdef', 'content-type': 'application/xml' }, payload: '<gateway/>' });
    assert.equal(reply.statusCode, 415);
    assert.equal((JSON.parse(reply.body) as ErrorJson).error.code, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE');
  });
});
