/**
 * Add Gateway in the product page's two steps (Basic Information, Certificate Configuration), and
 * Edit with the same form. Rules are checked as the operator types (validation.ts, the API's
 * wording); on save, the API's answer is shown next to the field it names, on the step that has it.
 */
import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { ACL_PLACEHOLDERS, checkAclTopic, MAX_ACL_RULES, PER_DEVICE_TEMPLATE } from '../acl.ts';
import {
  api, ApiError, LIMIT_NAMES, ok, type AclAction, type AclRule, type AuthType, type Gateway, type GatewayCreate, type GatewayLimitsUsage,
  type GatewayUpdate, type HttpsParam, type LimitName, type OcspMode, type ParsingTestResult, type SelfSignedCertificate, type VerificationFunction,
} from '../api.ts';
import { setFlash } from '../flash.ts';
import { navigate } from '../router.ts';
import { Banner, Field, GatewayWarnings, Link, PemInput, Spinner, Toggle } from '../ui.tsx';
import {
  checkGatewayName, checkHttpsUrl, checkOcsp, checkParams, checkPemCertificates, checkPemKey, checkPort, countPemCertificates,
  DEFAULT_PORT, MAX_PARAMS, MESSAGES, ocspNeedsX509, TEMPLATE_VARIABLES, type Errors,
} from '../validation.ts';

const SAMPLE_SCRIPT = `// Turns a device's raw bytes into JSON. Runs in a sandbox for every uplink;
// the original message is delivered either way.
function transformPayload(topic, bytes) {
  if (topic.endsWith('/data') && bytes.length === 2) {
    // Two bytes: a temperature, signed 16-bit big-endian, in tenths of a degree.
    return { temperature: (((bytes[0] << 24) >> 16) | bytes[1]) / 10 };
  }
  return { text: String.fromCharCode(...bytes) };
}
`;

const OCSP_LABELS: Record<OcspMode, string> = {
  DISABLED: 'Disabled',
  SERVER: 'OCSP verification for the server certificate',
  CLIENT: 'OCSP verification for client certificates',
  SERVER_AND_CLIENT: 'Client and server-side OCSP verification',
};

interface FormState {
  name: string;
  protocol: string;
  port: string;
  parsingEnabled: boolean;
  script: string;
  authType: AuthType;
  provider: 'FUNCTION' | 'HTTPS';
  functionName: string;
  url: string;
  params: HttpsParam[];
  caCertificate: string;
  x509: boolean;
  ocspMode: OcspMode;
  onResponderFailure: 'REJECT' | 'ACCEPT';
  chain: string;
  key: string;
  deviceRoots: string;
  trusted: string;
  aclDefault: AclAction;
  aclRules: AclRule[];
  /** As typed; empty = no limit. */
  limits: Record<LimitName, string>;
}

/** What a new gateway starts with: the limits every gateway had before they were settable (the API's defaults). */
const DEFAULT_LIMITS: Record<LimitName, string> = {
  maxConnections: '', messagesPerSecondPerDevice: '', bytesPerSecondPerDevice: '', maxSubscriptionsPerDevice: '1000',
  maxRetainedMessages: '100000', maxPacketSize: '1048576', maxQueuedMessagesPerDevice: '1000', maxSessionExpirySeconds: '604800',
  maxSessionsPerDevice: '', maxConnectionsPerAddress: '1000', connectionRatePerAddress: '200',
  maxRetainedBytes: '134217728', maxQueuedBytesPerDevice: '16777216', maxTopicLevels: '128', maxTopicLength: '4096', maxClientIdLength: '256',
  maxUserPropertiesPerPacket: '128', maxFiltersPerSubscribe: '1000',
};

const LIMIT_LABELS: Record<LimitName, { label: string; unit: string; past: string }> = {
  maxConnections: { label: 'Connected devices', unit: 'devices', past: 'refused (0x97; MQTT 3.1.1: server unavailable)' },
  messagesPerSecondPerDevice: { label: 'Messages per second per device', unit: 'msg/s', past: 'paced: its reads pause, nothing is dropped' },
  bytesPerSecondPerDevice: { label: 'Bytes per second per device', unit: 'B/s', past: 'paced: its reads pause, nothing is dropped' },
  maxSubscriptionsPerDevice: { label: 'Subscriptions per device', unit: 'filters', past: 'refused per filter (0x97; 3.1.1: 0x80)' },
  maxRetainedMessages: { label: 'Retained messages', unit: 'topics', past: 'not stored (PUBACK 0x97)' },
  maxPacketSize: { label: 'Packet size', unit: 'bytes', past: 'the connection is closed (0x95)' },
  maxQueuedMessagesPerDevice: { label: 'Queued messages per device', unit: 'messages', past: 'the oldest is dropped' },
  maxSessionExpirySeconds: { label: 'Session expiry', unit: 'seconds', past: 'lowered to this (told in CONNACK)' },
  maxSessionsPerDevice: { label: 'Sessions per device', unit: 'client ids', past: 'refused (0x97; 3.1.1: server unavailable)' },
  maxConnectionsPerAddress: { label: 'Open sockets per address', unit: 'sockets', past: 'closed before TLS' },
  connectionRatePerAddress: { label: 'New sockets per second per address', unit: 'per s', past: 'closed before TLS' },
  maxRetainedBytes: { label: 'Retained bytes', unit: 'bytes', past: 'not stored (PUBACK 0x97)' },
  maxQueuedBytesPerDevice: { label: 'Queued bytes per device', unit: 'bytes', past: 'the oldest are dropped' },
  maxTopicLevels: { label: 'Topic levels', unit: 'levels', past: 'refused (0x90; filters 0x8F); empty = 1000' },
  maxTopicLength: { label: 'Topic length', unit: 'bytes', past: 'refused (0x90; filters 0x8F); empty = 65535' },
  maxClientIdLength: { label: 'Client id length', unit: 'bytes', past: 'refused (0x85; 3.1.1: 2); empty = 65535' },
  maxUserPropertiesPerPacket: { label: 'User properties per packet', unit: 'properties', past: 'the connection is closed (0x97)' },
  maxFiltersPerSubscribe: { label: 'Filters per SUBSCRIBE', unit: 'filters', past: 'the connection is closed (0x97)' },
};

const EMPTY: FormState = {
  name: '', protocol: 'MQTT', port: String(DEFAULT_PORT), parsingEnabled: false, script: '', authType: 'ONE_PARTY', provider: 'FUNCTION',
  functionName: '', url: '', params: [], caCertificate: '', x509: false, ocspMode: 'DISABLED', onResponderFailure: 'REJECT',
  chain: '', key: '', deviceRoots: '', trusted: '', aclDefault: 'ALLOW', aclRules: [], limits: DEFAULT_LIMITS,
};

function fromGateway(g: Gateway): FormState {
  return {
    name: g.name, protocol: g.protocol, port: String(g.port), parsingEnabled: g.dataParsing.enabled, script: g.dataParsing.script ?? '',
    authType: g.authType, provider: g.thirdParty?.provider ?? 'FUNCTION', functionName: g.thirdParty?.functionName ?? '',
    url: g.thirdParty?.url ?? '', params: g.thirdParty?.params ?? [], caCertificate: g.thirdParty?.caCertificate ?? '',
    x509: g.x509.enabled, ocspMode: g.ocsp.mode, onResponderFailure: g.ocsp.onResponderFailure,
    chain: g.certificates.serverCertificateChain, key: '', deviceRoots: g.certificates.deviceRootCertificates ?? '',
    trusted: g.certificates.trustedCertificate ?? '',
    aclDefault: g.accessControl.defaultAction, aclRules: g.accessControl.rules,
    limits: Object.fromEntries(LIMIT_NAMES.map((n) => [n, g.limits[n] === null ? '' : String(g.limits[n])])) as Record<LimitName, string>,
  };
}

const serverOcsp = (mode: OcspMode) => mode === 'SERVER' || mode === 'SERVER_AND_CLIENT';

/** Step 1's rules; keys are the API's field paths. */
function basicErrors(f: FormState): Errors {
  const e: Errors = {};
  const name = checkGatewayName(f.name);
  if (name) e.name = name;
  const port = checkPort(f.port);
  if (port) e.port = port;
  if (f.parsingEnabled && f.script.trim() === '') e['dataParsing.script'] = 'dataParsing.script is required when data parsing is enabled';
  if (f.authType === 'THIRD_PARTY') {
    if (f.provider === 'FUNCTION') {
      if (f.functionName === '') e['thirdParty.functionName'] = 'thirdParty.functionName is required';
    } else {
      const url = checkHttpsUrl(f.url);
      if (url) e['thirdParty.url'] = url;
      Object.assign(e, checkParams(f.params));
      const ca = checkPemCertificates(f.caCertificate, 'thirdParty.caCertificate');
      if (ca) e['thirdParty.caCertificate'] = ca;
    }
  }
  const ocsp = checkOcsp(f.ocspMode, f.x509);
  if (ocsp) e['ocsp.mode'] = ocsp;
  f.aclRules.forEach((r, i) => {
    const field = `accessControl.rules[${i}].topic`;
    const topic = checkAclTopic(r.topic, field);
    if (topic) e[field] = topic;
  });
  for (const n of LIMIT_NAMES) {
    // The API checks each range (and says it); here only the shape, as typed.
    if (f.limits[n].trim() !== '' && !/^\d+$/.test(f.limits[n].trim())) e[`limits.${n}`] = `limits.${n} must be a whole number, or empty for no limit`;
  }
  return e;
}

function certificateErrors(f: FormState, editing: boolean): Errors {
  const e: Errors = {};
  if (f.chain.trim() === '') e['certificates.serverCertificateChain'] = 'certificates.serverCertificateChain is required: devices connect over TLS only';
  else {
    const c = checkPemCertificates(f.chain, 'certificates.serverCertificateChain');
    if (c) e['certificates.serverCertificateChain'] = c;
  }
  if (f.key.trim() === '' && !editing) e['certificates.serverPrivateKey'] = 'certificates.serverPrivateKey is required with the server certificate';
  else {
    const k = checkPemKey(f.key);
    if (k) e['certificates.serverPrivateKey'] = k;
  }
  if (f.x509) {
    if (f.deviceRoots.trim() === '') e['certificates.deviceRootCertificates'] = 'certificates.deviceRootCertificates is required with X.509 device verification';
    else {
      const c = checkPemCertificates(f.deviceRoots, 'certificates.deviceRootCertificates');
      if (c) e['certificates.deviceRootCertificates'] = c;
    }
  }
  if (serverOcsp(f.ocspMode)) {
    if (f.trusted.trim() === '') e['certificates.trustedCertificate'] = `certificates.trustedCertificate (the server root) is required with ocsp.mode ${f.ocspMode}`;
    else {
      const c = checkPemCertificates(f.trusted, 'certificates.trustedCertificate');
      if (c) e['certificates.trustedCertificate'] = c;
    }
  }
  return e;
}

function isStep2Field(field: string): boolean {
  return field.startsWith('certificates');
}

export function GatewayFormPage({ id }: { id?: string }) {
  const editing = id !== undefined;
  const [form, setForm] = useState<FormState>(EMPTY);
  const [original, setOriginal] = useState<Gateway | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [step, setStep] = useState<1 | 2>(1);
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [showAll, setShowAll] = useState(false);
  const [serverError, setServerError] = useState<{ field: string | null; message: string } | null>(null);
  const [saving, setSaving] = useState(false);
  const [functions, setFunctions] = useState<VerificationFunction[] | null>(null);
  const [anyGatewayId, setAnyGatewayId] = useState<string | null>(id ?? null);

  useEffect(() => {
    ok(api.GET('/api/v1/functions')).then((r) => setFunctions(r.items), () => setFunctions([]));
    if (id !== undefined) {
      ok(api.GET('/api/v1/gateways/{id}', { params: { path: { id } } })).then((g) => { setOriginal(g); setForm(fromGateway(g)); }, (e: Error) => setLoadError(e.message));
    } else {
      // The parsing dry run runs a draft through an existing gateway's route (see ParsingTest).
      ok(api.GET('/api/v1/gateways')).then((r) => setAnyGatewayId(r.items[0]?.id ?? null), () => undefined);
    }
  }, [id]);

  const set = <K extends keyof FormState>(key: K, value: FormState[K], field: string = key) => {
    setForm((f) => {
      const next = { ...f, [key]: value };
      // OCSP options follow the X.509 choice: client checks need device certificates.
      if (key === 'x509' && !value && ocspNeedsX509(next.ocspMode)) next.ocspMode = next.ocspMode === 'SERVER_AND_CLIENT' ? 'SERVER' : 'DISABLED';
      return next;
    });
    setTouched((t) => new Set(t).add(field));
    if (serverError?.field === field) setServerError(null);
  };

  const errors1 = useMemo(() => basicErrors(form), [form]);
  const errors2 = useMemo(() => certificateErrors(form, editing), [form, editing]);
  const errorFor = (field: string): string | null => {
    if (serverError?.field === field) return serverError.message;
    const local = errors1[field] ?? errors2[field];
    if (local === undefined) return null;
    return showAll || touched.has(field) ? local : null;
  };

  const next = (e?: FormEvent) => {
    e?.preventDefault();
    if (Object.keys(errors1).length > 0) {
      setShowAll(true);
      document.querySelector('.has-error')?.scrollIntoView({ block: 'center' });
      return;
    }
    setShowAll(false);
    setStep(2);
    window.scrollTo(0, 0);
  };

  const buildBody = (): GatewayUpdate => {
    const thirdParty = form.authType === 'THIRD_PARTY'
      ? form.provider === 'FUNCTION'
        ? { provider: 'FUNCTION' as const, functionName: form.functionName }
        : {
          provider: 'HTTPS' as const, url: form.url, params: form.params, caCertificate: form.caCertificate.trim() === '' ? null : form.caCertificate,
          // thirdParty is replaced whole on an edit: keep the limits this form does not show (the signing secret stays by itself).
          ...(original?.thirdParty?.provider === 'HTTPS' ? {
            timeoutMs: original.thirdParty.timeoutMs,
            acceptCacheTtlSeconds: original.thirdParty.acceptCacheTtlSeconds,
            rejectCacheTtlSeconds: original.thirdParty.rejectCacheTtlSeconds,
          } : {}),
        }
      : undefined;
    const certificates: NonNullable<GatewayUpdate['certificates']> = {};
    const certField = (name: 'deviceRootCertificates' | 'trustedCertificate', value: string, before: string | null | undefined, needed: boolean) => {
      const v = needed && value.trim() !== '' ? value : null;
      if (!editing) { if (v !== null) certificates[name] = v; return; }
      // An edit sends only what changed: a re-sent certificate would have its dates checked again.
      if ((before ?? null) !== v) certificates[name] = v;
    };
    // The chain is replaced, never removed (the API has no null for it; step 2 requires one before saving).
    if (form.chain.trim() !== '' && form.chain !== original?.certificates.serverCertificateChain) certificates.serverCertificateChain = form.chain;
    if (form.key.trim() !== '') certificates.serverPrivateKey = form.key;
    certField('deviceRootCertificates', form.deviceRoots, original?.certificates.deviceRootCertificates, form.x509);
    certField('trustedCertificate', form.trusted, original?.certificates.trustedCertificate, serverOcsp(form.ocspMode));
    return {
      name: form.name,
      protocol: form.protocol,
      port: Number(form.port),
      dataParsing: { enabled: form.parsingEnabled, script: form.script.trim() === '' ? null : form.script },
      authType: form.authType,
      ...(thirdParty !== undefined ? { thirdParty } : {}),
      x509: { enabled: form.x509 },
      ocsp: { mode: form.ocspMode, onResponderFailure: form.onResponderFailure },
      accessControl: { defaultAction: form.aclDefault, rules: form.aclRules },
      limits: Object.fromEntries(LIMIT_NAMES.map((n) => [n, form.limits[n].trim() === '' ? null : Number(form.limits[n])])) as GatewayUpdate['limits'],
      ...(editing && Object.keys(certificates).length === 0 ? {} : { certificates }),
    };
  };

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (Object.keys(errors1).length > 0) { setStep(1); setShowAll(true); return; }
    if (Object.keys(errors2).length > 0) { setShowAll(true); return; }
    setSaving(true);
    setServerError(null);
    try {
      const saved = id !== undefined
        ? await ok(api.PATCH('/api/v1/gateways/{id}', { params: { path: { id } }, body: buildBody() }))
        // A new gateway's name and chain are there: step 1 and step 2 refuse to save without them.
        : await ok(api.POST('/api/v1/gateways', { body: buildBody() as GatewayCreate }));
      const details = saved.warnings.map((w) => `${w.field}: ${w.message}`);
      if (saved.status === 'ERROR') details.unshift(`It is not running: ${saved.statusReason ?? 'unknown reason'}`);
      setFlash({
        kind: saved.status === 'ERROR' || details.length > 0 ? 'warn' : 'ok',
        text: editing ? `Gateway "${saved.name}" saved; the change applies live.` : `Gateway "${saved.name}" created. Devices connect to ${saved.url}.`,
        details,
      });
      navigate('/gateways');
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : null;
      const field = apiErr?.field ?? null;
      setServerError({ field, message: (err as Error).message });
      if (field !== null && !isStep2Field(field)) setStep(1);
    } finally {
      setSaving(false);
    }
  };

  if (loadError) return <div className="page"><Banner kind="error">{loadError}</Banner><Link to="/gateways">Back to gateways</Link></div>;
  if (editing && original === null) return <div className="page"><Spinner /></div>;

  const unplacedError = serverError !== null && (serverError.field === null || document.getElementById(fieldId(serverError.field)) === null);

  return (
    <div className="page narrow">
      <div className="crumbs"><Link to="/gateways">Gateways</Link> / {editing ? `Edit ${original?.name ?? ''}` : 'Add Gateway'}</div>
      <h1>{editing ? 'Edit gateway' : 'Add Gateway'}</h1>
      <ol className="steps" aria-label="Steps">
        <li className={step === 1 ? 'current' : 'done'}><button type="button" onClick={() => setStep(1)}><span>1</span> Basic Information</button></li>
        <li className={step === 2 ? 'current' : ''}><button type="button" onClick={() => next()}><span>2</span> Certificate Configuration</button></li>
      </ol>
      {unplacedError && <Banner kind="error">{serverError.message}</Banner>}
      {original !== null && original.warnings.length > 0 && <GatewayWarnings warnings={original.warnings} />}

      {step === 1 ? (
        <form className="card form" onSubmit={next} noValidate>
          <Field label="Gateway name" htmlFor="name" required error={errorFor('name')}
            hint="Unique. 4 to 30 characters: letters, digits and underscores (_).">
            <input id="name" value={form.name} onChange={(e) => set('name', e.target.value)} autoComplete="off" />
          </Field>
          <div className="row">
            <Field label="Protocol" htmlFor="protocol" error={errorFor('protocol')}>
              <select id="protocol" value={form.protocol} onChange={(e) => set('protocol', e.target.value)}>
                <option value="MQTT">MQTT</option>
              </select>
            </Field>
            <Field label="Custom port number" htmlFor="port" required error={errorFor('port')} hint="1024 to 65535. Default 1883.">
              <input id="port" inputMode="numeric" value={form.port} onChange={(e) => set('port', e.target.value)} />
            </Field>
          </div>

          <fieldset>
            <legend>Data parsing</legend>
            <Toggle id="parsing" checked={form.parsingEnabled} label="Enable data parsing"
              onChange={(v) => { set('parsingEnabled', v, 'dataParsing.script'); if (v && form.script === '') set('script', SAMPLE_SCRIPT, 'dataParsing.script'); }} />
            <p className="hint">Data passes through unchanged. With parsing on, <code>transformPayload(topic, bytes)</code> turns each raw uplink into JSON; the original message is still delivered.</p>
            {form.parsingEnabled && (
              <>
                <Field label="Parsing script" htmlFor="dataParsing.script" error={errorFor('dataParsing.script')}>
                  <textarea id="dataParsing.script" className="mono code" rows={10} spellCheck={false} value={form.script}
                    onChange={(e) => set('script', e.target.value, 'dataParsing.script')} />
                </Field>
                <ParsingTest gatewayId={anyGatewayId} script={form.script} />
              </>
            )}
          </fieldset>

          <fieldset>
            <legend>Authentication type</legend>
            <div className="radio-cards">
              <label className={form.authType === 'ONE_PARTY' ? 'selected' : ''}>
                <input type="radio" name="authType" value="ONE_PARTY" checked={form.authType === 'ONE_PARTY'} onChange={() => set('authType', 'ONE_PARTY')} />
                <strong>One-party verification</strong>
                <span>Import each device's username, password and SN; Gatehouse checks them.</span>
              </label>
              <label className={form.authType === 'THIRD_PARTY' ? 'selected' : ''}>
                <input type="radio" name="authType" value="THIRD_PARTY" checked={form.authType === 'THIRD_PARTY'} onChange={() => set('authType', 'THIRD_PARTY')} />
                <strong>Third-party verification</strong>
                <span>Your own logic decides: a verification function, or your HTTPS service.</span>
              </label>
            </div>
            {form.authType === 'THIRD_PARTY' && (
              <div className="sub-form">
                <Field label="Verification service" htmlFor="provider" error={errorFor('thirdParty.provider') ?? errorFor('thirdParty')}>
                  <select id="provider" value={form.provider} onChange={(e) => set('provider', e.target.value as 'FUNCTION' | 'HTTPS', 'thirdParty.provider')}>
                    <option value="FUNCTION">Verification function (runs in Gatehouse's sandbox)</option>
                    <option value="HTTPS">External HTTPS service</option>
                  </select>
                </Field>
                {form.provider === 'FUNCTION' ? (
                  <Field label="Function" htmlFor="thirdParty.functionName" required error={errorFor('thirdParty.functionName')}
                    hint={functions !== null && functions.length === 0
                      ? <>No functions yet. <Link to="/functions">Write one on the Functions page</Link>, then come back.</>
                      : <>It receives userName, password, clientId, certificateCommonName and answers {'{ result, deviceName }'}. <Link to="/functions">Manage functions</Link></>}>
                    <select id="thirdParty.functionName" value={form.functionName} onChange={(e) => set('functionName', e.target.value, 'thirdParty.functionName')}>
                      <option value="">Choose a function…</option>
                      {(functions ?? []).map((f) => <option key={f.name} value={f.name}>{f.name}</option>)}
                    </select>
                  </Field>
                ) : (
                  <>
                    <Field label="HTTPS URL for device verification" htmlFor="thirdParty.url" required error={errorFor('thirdParty.url')}
                      hint="Must start with https://. Gatehouse POSTs {username, password, certificateCommonName} plus your parameters as JSON; a 2xx answer with deviceName accepts.">
                      <input id="thirdParty.url" value={form.url} placeholder="https://auth.example.com/verify" onChange={(e) => set('url', e.target.value, 'thirdParty.url')} />
                    </Field>
                    <ParamsEditor params={form.params} errorFor={errorFor} onChange={(p, field) => set('params', p, field)} />
                    <Field label="CA certificate of the service (optional)" htmlFor="thirdParty.caCertificate" error={errorFor('thirdParty.caCertificate')}
                      hint="Only if the service's certificate is not issued by a public CA.">
                      <PemInput id="thirdParty.caCertificate" rows={3} value={form.caCertificate} onChange={(v) => set('caCertificate', v, 'thirdParty.caCertificate')} />
                    </Field>
                  </>
                )}
              </div>
            )}
          </fieldset>

          <fieldset>
            <legend>X.509 and OCSP</legend>
            <Toggle id="x509" checked={form.x509} label="Enable X.509 certificate-based device verification" onChange={(v) => set('x509', v, 'x509.enabled')} />
            <p className="hint">Devices must present a client certificate issued under the device root certificate (step 2).</p>
            <Field label="Enable OCSP" htmlFor="ocsp.mode" error={errorFor('ocsp.mode')}
              hint={form.x509 ? 'OCSP checks whether a certificate was revoked by its CA. Responses are cached 5 min to 1 h.'
                : 'Client-certificate OCSP options need X.509 device verification.'}>
              <select id="ocsp.mode" value={form.ocspMode} onChange={(e) => set('ocspMode', e.target.value as OcspMode, 'ocsp.mode')}>
                {(form.x509 ? ['DISABLED', 'SERVER', 'CLIENT', 'SERVER_AND_CLIENT'] as const : ['DISABLED', 'SERVER'] as const)
                  .map((m) => <option key={m} value={m}>{OCSP_LABELS[m]}</option>)}
              </select>
            </Field>
            {ocspNeedsX509(form.ocspMode) && (
              <Field label="When the OCSP responder cannot answer" htmlFor="ocsp.onResponderFailure" error={errorFor('ocsp.onResponderFailure')}>
                <select id="ocsp.onResponderFailure" value={form.onResponderFailure}
                  onChange={(e) => set('onResponderFailure', e.target.value as 'REJECT' | 'ACCEPT', 'ocsp.onResponderFailure')}>
                  <option value="REJECT">Refuse the device (safer)</option>
                  <option value="ACCEPT">Let the device in</option>
                </select>
              </Field>
            )}
          </fieldset>

          <AccessEditor defaultAction={form.aclDefault} rules={form.aclRules} errorFor={errorFor}
            onChange={(next, field) => { set('aclRules', next.rules, field); set('aclDefault', next.defaultAction, field); }} />
          <LimitsEditor limits={form.limits} usage={original?.limitsUsage ?? null} errorFor={errorFor}
            onChange={(name, value) => set('limits', { ...form.limits, [name]: value }, `limits.${name}`)} />

          <div className="form-actions">
            <button type="button" className="btn" onClick={() => navigate('/gateways')}>Cancel</button>
            <button type="submit" className="btn primary">Next</button>
          </div>
        </form>
      ) : (
        <form className="card form" onSubmit={(e) => void save(e)} noValidate>
          <Banner kind="info">Certificates are PEM text. Paste them or upload the files. Devices connect over TLS only, so the gateway presents
            the certificate of the server it replaces.</Banner>
          <Field label="Server certificate" htmlFor="certificates.serverCertificateChain" required error={errorFor('certificates.serverCertificateChain')}
            hint={<>Reverse order of the chain: <strong>the server certificate first</strong>, then the intermediate certificates (B, then A). Leave out the root.
              {form.chain.trim() !== '' && <> · {countPemCertificates(form.chain)} certificate(s)</>}</>}>
            <PemInput id="certificates.serverCertificateChain" value={form.chain} onChange={(v) => set('chain', v, 'certificates.serverCertificateChain')}
              placeholder={'-----BEGIN CERTIFICATE-----\n(server certificate)\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n(intermediate)\n-----END CERTIFICATE-----'} />
          </Field>
          <Field label="Private key of the server certificate" htmlFor="certificates.serverPrivateKey" required={!editing} error={errorFor('certificates.serverPrivateKey')}
            hint={editing ? 'Write-only. Leave empty to keep the current key; paste a new one with a new certificate.' : 'Unencrypted PEM. It is stored encrypted and never shown again.'}>
            <PemInput id="certificates.serverPrivateKey" rows={4} value={form.key} onChange={(v) => set('key', v, 'certificates.serverPrivateKey')}
              placeholder="-----BEGIN PRIVATE KEY-----" />
          </Field>
          <SelfSignedButton onGenerated={(c) => { set('chain', c.certificatePem, 'certificates.serverCertificateChain'); set('key', c.privateKeyPem, 'certificates.serverPrivateKey'); }} />

          {form.x509 ? (
            <Field label="Device root certificate" htmlFor="certificates.deviceRootCertificates" required error={errorFor('certificates.deviceRootCertificates')}
              hint="Reverse order of the device chain: the intermediate certificates first (B, then A), then the device root certificate.">
              <PemInput id="certificates.deviceRootCertificates" value={form.deviceRoots} onChange={(v) => set('deviceRoots', v, 'certificates.deviceRootCertificates')} />
            </Field>
          ) : <p className="hint">No device root certificate needed: X.509 device verification is off.</p>}

          {serverOcsp(form.ocspMode) ? (
            <Field label="Trusted certificate" htmlFor="certificates.trustedCertificate" required error={errorFor('certificates.trustedCertificate')}
              hint="The server root certificate: OCSP responses about the server certificate are verified against it.">
              <PemInput id="certificates.trustedCertificate" rows={4} value={form.trusted} onChange={(v) => set('trusted', v, 'certificates.trustedCertificate')} />
            </Field>
          ) : <p className="hint">No trusted certificate needed: server-certificate OCSP is off.</p>}

          <div className="form-actions">
            <button type="button" className="btn" onClick={() => setStep(1)}>Previous</button>
            <button type="submit" className="btn primary" disabled={saving}>{saving ? 'Saving…' : editing ? 'Save' : 'OK'}</button>
          </div>
        </form>
      )}
    </div>
  );
}

/** The element id of a field, so API errors can find their field. */
function fieldId(field: string): string {
  const param = /^thirdParty\.params\[(\d+)\]\.(key|value)$/.exec(field);
  if (param) return `param-${param[2]}-${param[1]}`;
  const rule = /^accessControl\.rules\[(\d+)\]\.(action|access|topic)$/.exec(field);
  if (rule) return `acl-${rule[2]}-${rule[1]}`;
  const limit = /^limits\.(\w+)$/.exec(field);
  if (limit) return `limit-${limit[1]}`;
  const ids: Record<string, string> = { 'accessControl.defaultAction': 'acl-default', 'accessControl.rules': 'acl-add', 'x509.enabled': 'x509', 'dataParsing.enabled': 'parsing', 'thirdParty.provider': 'provider', 'thirdParty': 'provider', 'thirdParty.params': 'params-add' };
  return ids[field] ?? field;
}

/** The limits half of "Access and limits": each limit, empty for none, with its use on the running gateway beside it. */
function LimitsEditor({ limits, usage, errorFor, onChange }: {
  limits: Record<LimitName, string>; usage: GatewayLimitsUsage | null; errorFor: (f: string) => string | null;
  onChange: (name: LimitName, value: string) => void;
}) {
  return (
    <fieldset data-testid="limits">
      <legend>Limits</legend>
      <p className="hint">What the gateway and each device on it may take. Empty means no limit. Changes apply to the running gateway
        without a restart; a lower limit refuses more, it never disconnects what is there.</p>
      <div className="limits-grid">
        {LIMIT_NAMES.map((n) => {
          const use = usage?.[n];
          return (
            <Field key={n} label={LIMIT_LABELS[n].label} htmlFor={`limit-${n}`} error={errorFor(`limits.${n}`)} hint={`Past it: ${LIMIT_LABELS[n].past}`}>
              <div className="limit-row">
                <input id={`limit-${n}`} inputMode="numeric" value={limits[n]} placeholder="no limit" onChange={(e) => onChange(n, e.target.value)} />
                <span className="limit-unit">{LIMIT_LABELS[n].unit}</span>
                {use !== undefined && (
                  <span className="limit-use" data-limit-use={n}>
                    {use.current !== null ? `in use: ${use.current}` : ''}{use.current !== null && use.hits > 0 ? ' · ' : ''}{use.hits > 0 ? `hit ${use.hits}×` : ''}
                  </span>
                )}
              </div>
            </Field>
          );
        })}
      </div>
    </fieldset>
  );
}

/** "Access and limits": the gateway's topic access rules, in order, with the per-device template. */
function AccessEditor({ defaultAction, rules, errorFor, onChange }: {
  defaultAction: AclAction; rules: AclRule[]; errorFor: (f: string) => string | null;
  onChange: (next: { defaultAction: AclAction; rules: AclRule[] }, field: string) => void;
}) {
  const update = (i: number, part: keyof AclRule, v: string) =>
    onChange({ defaultAction, rules: rules.map((r, j) => (j === i ? { ...r, [part]: v } : r)) }, `accessControl.rules[${i}].${part}`);
  const move = (i: number, by: -1 | 1) => {
    const next = rules.slice();
    const [rule] = next.splice(i, 1);
    next.splice(i + by, 0, rule!);
    onChange({ defaultAction, rules: next }, 'accessControl.rules');
  };
  return (
    <fieldset>
      <legend>Access and limits</legend>
      <p className="hint">Which topics each device may publish to and subscribe to. Rules are read in order; the first that applies decides.
        A level of a topic may be a placeholder, filled for each device when it connects: {ACL_PLACEHOLDERS.map((p) => <code key={p}>{`\${${p}}`} </code>)}.
        Refused: MQTT 5 hears 0x87, MQTT 3.1.1 gets a SUBACK failure and its PUBLISH is dropped.</p>
      <button type="button" className="btn small" id="acl-template"
        onClick={() => onChange(structuredClone(PER_DEVICE_TEMPLATE), 'accessControl.rules')}>Each device only under its own topic</button>
      <div className="acl-rules" data-testid="acl-rules">
        {rules.map((r, i) => (
          <div className="param-row acl-row" key={i} data-rule={i}>
            <Field label="Action" htmlFor={`acl-action-${i}`} error={errorFor(`accessControl.rules[${i}].action`)}>
              <select id={`acl-action-${i}`} value={r.action} onChange={(e) => update(i, 'action', e.target.value)}>
                <option value="ALLOW">Allow</option>
                <option value="DENY">Deny</option>
              </select>
            </Field>
            <Field label="Access" htmlFor={`acl-access-${i}`} error={errorFor(`accessControl.rules[${i}].access`)}>
              <select id={`acl-access-${i}`} value={r.access} onChange={(e) => update(i, 'access', e.target.value)}>
                <option value="ALL">Publish and subscribe</option>
                <option value="PUBLISH">Publish</option>
                <option value="SUBSCRIBE">Subscribe</option>
              </select>
            </Field>
            <Field label="Topic" htmlFor={`acl-topic-${i}`} error={errorFor(`accessControl.rules[${i}].topic`)}>
              <input id={`acl-topic-${i}`} className="mono" value={r.topic} placeholder="devices/${deviceName}/#" onChange={(e) => update(i, 'topic', e.target.value)} />
            </Field>
            <div className="acl-moves">
              <button type="button" className="btn small ghost" aria-label={`Move rule ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>↑</button>
              <button type="button" className="btn small ghost" aria-label={`Move rule ${i + 1} down`} disabled={i === rules.length - 1} onClick={() => move(i, 1)}>↓</button>
              <button type="button" className="btn small ghost remove" aria-label={`Remove rule ${i + 1}`}
                onClick={() => onChange({ defaultAction, rules: rules.filter((_, j) => j !== i) }, 'accessControl.rules')}>Remove</button>
            </div>
          </div>
        ))}
      </div>
      {errorFor('accessControl.rules') && <div className="error-text">{errorFor('accessControl.rules')}</div>}
      <button type="button" id="acl-add" className="btn small" disabled={rules.length >= MAX_ACL_RULES}
        onClick={() => onChange({ defaultAction, rules: [...rules, { action: 'ALLOW', access: 'ALL', topic: '' }] }, 'accessControl.rules')}>+ Add rule</button>
      <Field label="When no rule applies" htmlFor="acl-default" error={errorFor('accessControl.defaultAction')}
        hint="Allow keeps devices whose firmware cannot change working; Deny admits only what a rule allows.">
        <select id="acl-default" value={defaultAction} onChange={(e) => onChange({ defaultAction: e.target.value as AclAction, rules }, 'accessControl.defaultAction')}>
          <option value="ALLOW">Allow</option>
          <option value="DENY">Deny</option>
        </select>
      </Field>
    </fieldset>
  );
}

function ParamsEditor({ params, errorFor, onChange }: {
  params: HttpsParam[]; errorFor: (f: string) => string | null; onChange: (p: HttpsParam[], field: string) => void;
}) {
  const update = (i: number, part: 'key' | 'value', v: string) =>
    onChange(params.map((p, j) => (j === i ? { ...p, [part]: v } : p)), `thirdParty.params[${i}].${part}`);
  return (
    <div className="params">
      <div className="label-line">Custom verification parameters <span className="muted-text">({params.length}/{MAX_PARAMS}, optional)</span></div>
      <p className="hint">Extra JSON fields sent to your service. Keys and values up to 64 characters; a value may use variables.</p>
      {params.map((p, i) => (
        <div className="param-row" key={i}>
          <Field label="Key" htmlFor={`param-key-${i}`} error={errorFor(`thirdParty.params[${i}].key`)}>
            <input id={`param-key-${i}`} value={p.key} onChange={(e) => update(i, 'key', e.target.value)} placeholder="sn" />
          </Field>
          <Field label="Value" htmlFor={`param-value-${i}`} error={errorFor(`thirdParty.params[${i}].value`)}>
            <div className="with-addon">
              <input id={`param-value-${i}`} value={p.value} list="template-variables" onChange={(e) => update(i, 'value', e.target.value)} placeholder="${clientId}" />
              <select aria-label="Insert a variable" value="" onChange={(e) => update(i, 'value', p.value + e.target.value)}>
                <option value="">+ variable</option>
                {TEMPLATE_VARIABLES.map((v) => <option key={v.variable} value={v.variable}>{v.variable} — {v.help}</option>)}
              </select>
            </div>
          </Field>
          <button type="button" className="btn small ghost remove" aria-label={`Remove parameter ${i + 1}`}
            onClick={() => onChange(params.filter((_, j) => j !== i), 'thirdParty.params')}>Remove</button>
        </div>
      ))}
      <datalist id="template-variables">
        {TEMPLATE_VARIABLES.map((v) => <option key={v.variable} value={v.variable}>{v.help}</option>)}
      </datalist>
      {errorFor('thirdParty.params') && <div className="error-text">{errorFor('thirdParty.params')}</div>}
      <button type="button" id="params-add" className="btn small" disabled={params.length >= MAX_PARAMS}
        title={params.length >= MAX_PARAMS ? MESSAGES.GW_ERR_TOO_MANY_PARAMS : undefined}
        onClick={() => onChange([...params, { key: '', value: '' }], 'thirdParty.params')}>+ Add parameter</button>
    </div>
  );
}

function ParsingTest({ gatewayId, script }: { gatewayId: string | null; script: string }) {
  const [topic, setTopic] = useState('devices/sensor-1/data');
  const [payload, setPayload] = useState('00eb');
  const [result, setResult] = useState<ParsingTestResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  if (gatewayId === null) return <p className="hint">The test run becomes available once one gateway exists (it runs on the server).</p>;
  const run = async () => {
    setRunning(true);
    setError(null);
    setResult(null);
    try {
      setResult(await ok(api.POST('/api/v1/gateways/{id}/parsing/test', { params: { path: { id: gatewayId } }, body: { script, topic, payload, encoding: 'hex' } })));
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setRunning(false);
    }
  };
  return (
    <div className="test-run">
      <div className="label-line">Test run</div>
      <div className="row">
        <Field label="Topic" htmlFor="test-topic"><input id="test-topic" value={topic} onChange={(e) => setTopic(e.target.value)} /></Field>
        <Field label="Payload (hex)" htmlFor="test-payload"><input id="test-payload" className="mono" value={payload} onChange={(e) => setPayload(e.target.value)} /></Field>
      </div>
      <button type="button" className="btn small" disabled={running} onClick={() => void run()}>{running ? 'Running…' : 'Run script'}</button>
      {error && <div className="error-text">{error}</div>}
      {result && (
        <div className={`result ${result.error ? 'bad' : 'ok'}`} data-testid="parsing-result">
          {result.error ? <div><strong>{result.error.kind}</strong>: {result.error.message}{result.error.line !== undefined && ` (line ${result.error.line})`}</div>
            : <pre>{JSON.stringify(result.output, null, 2)}</pre>}
          {result.logs.length > 0 && <pre className="logs">{result.logs.map((l) => `[${l.level}] ${l.message}`).join('\n')}</pre>}
          <div className="muted-text">{result.durationMs.toFixed(1)} ms{result.propertyPost ? ' · an Alink property post' : ''}</div>
        </div>
      )}
    </div>
  );
}

function SelfSignedButton({ onGenerated }: { onGenerated: (c: SelfSignedCertificate) => void }) {
  const defaultHosts = [...new Set([location.hostname, 'localhost', '127.0.0.1'])].join(', ');
  const [hosts, setHosts] = useState(defaultHosts);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const generate = async () => {
    setBusy(true);
    setNote(null);
    try {
      const list = hosts.split(/[\s,]+/).filter(Boolean);
      const cert = await ok(api.POST('/api/v1/certificates/self-signed', { body: { hosts: list } }));
      onGenerated(cert);
      setNote({ kind: 'ok', text: `${cert.warning} Valid until ${new Date(cert.notAfter).toLocaleDateString()}.` });
    } catch (e) {
      setNote({ kind: 'error', text: (e as Error).message });
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="self-signed">
      <div className="label-line">No certificate at hand?</div>
      <div className="with-addon">
        <input aria-label="Host names for the test certificate" value={hosts} onChange={(e) => setHosts(e.target.value)} />
        <button type="button" className="btn small" disabled={busy} onClick={() => void generate()}>
          {busy ? 'Generating…' : 'Generate a self-signed test certificate'}
        </button>
      </div>
      <p className="hint">Fills both fields above with a throwaway certificate for these host names. Devices must trust it explicitly; not for production.</p>
      {note && <Banner kind={note.kind === 'ok' ? 'warn' : 'error'}>{note.text}</Banner>}
    </div>
  );
}
