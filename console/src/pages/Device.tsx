/**
 * A device's page (issue 14): its state, last seen, address, certificate, properties; its MQTT sessions
 * (subscriptions, messages in flight and queued) as the engine holds them; its recent messages and its
 * connection-event timeline; and the actions: disable or enable, disconnect now, delete, send a message down.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, ApiError, ok, type ConnectionEvent, type DeviceSession, type DownlinkResult, type Message } from '../api.ts';
import { decodePayload } from '../payload.ts';
import { navigate } from '../router.ts';
import { openStream } from '../stream.ts';
import { Banner, Empty, Field, formatTime, Link, Spinner, StatusBadge, useLoad } from '../ui.tsx';

const EVENTS_SHOWN = 50;
const MESSAGES_SHOWN = 20;

export function DevicePage({ productKey, deviceName }: { productKey: string; deviceName: string }) {
  const base = { params: { path: { productKey, deviceName } } };
  const device = useLoad(async () => {
    const [d, p] = await Promise.all([
      ok(api.GET('/api/v1/products/{productKey}/devices/{deviceName}', base)),
      ok(api.GET('/api/v1/products/{productKey}', { params: { path: { productKey } } })),
    ]);
    return { device: d, product: p };
  }, [productKey, deviceName]);
  const sessions = useLoad(() => ok(api.GET('/api/v1/products/{productKey}/devices/{deviceName}/sessions', base)), [productKey, deviceName]);
  const gatewayId = device.data?.product.gatewayId;
  const username = device.data?.device.username ?? null;
  const messages = useLoad(async () => gatewayId === undefined ? null
    : ok(api.GET('/api/v1/messages', { params: { query: { gatewayId, deviceName, limit: MESSAGES_SHOWN } } })), [gatewayId, deviceName]);
  const events = useLoad(async () => {
    if (gatewayId === undefined) return null;
    // By device name, and by username: a refusal before the device was known (a wrong password) carries only the latter.
    const queries = [{ deviceName }, ...(username === null ? [] : [{ username }])];
    const pages = await Promise.all(queries.map((q) => ok(api.GET('/api/v1/events', { params: { query: { gatewayId, ...q, limit: EVENTS_SHOWN } } }))));
    const byId = new Map(pages.flatMap((p) => p.items).map((e) => [e.id, e]));
    return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, EVENTS_SHOWN);
  }, [gatewayId, deviceName, username]);
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const reload = useRef(() => undefined as void);
  reload.current = () => { device.reload(); sessions.reload(); messages.reload(); events.reload(); };

  // Its connection events and messages live: the page follows what the device does.
  useEffect(() => {
    if (gatewayId === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(() => reload.current(), 200);
    };
    const stream = openStream({ gatewayId, deviceName, types: 'message,online,offline,connection' }, refresh, () => undefined);
    const poll = setInterval(() => reload.current(), 10_000);
    return () => { stream.close(); clearInterval(poll); clearTimeout(timer); };
  }, [gatewayId, deviceName]);

  const act = async (what: string, run: () => Promise<string>) => {
    setNotice(null);
    try {
      setNotice({ kind: 'ok', text: await run() });
    } catch (e) {
      setNotice({ kind: 'error', text: `${what}: ${(e as Error).message}` });
    }
    reload.current();
  };

  if (device.error) {
    return <div className="page"><Banner kind="error">{device.error.message}</Banner><Link to={`/products/${encodeURIComponent(productKey)}`}>Back to the product</Link></div>;
  }
  if (device.data === null) return <div className="page"><Spinner /></div>;
  const { device: d, product: p } = device.data;
  const connected = (sessions.data?.items ?? []).some((s) => s.connected);

  return (
    <div className="page">
      <div className="crumbs"><Link to="/products">Products</Link> / <Link to={`/products/${encodeURIComponent(productKey)}`}>{p.name}</Link> / {d.deviceName}</div>
      <div className="page-head">
        <div>
          <h1>{d.deviceName} <StatusBadge status={d.status} /></h1>
          <p className="muted-text">{d.origin === 'AUTO_CREATED' ? 'Created on its first accepted connection' : 'Imported one-party row'}</p>
        </div>
        <div className="head-actions">
          <button className={`btn${d.status === 'DISABLED' ? '' : ' danger'}`} onClick={() => void act(d.status === 'DISABLED' ? 'Enable' : 'Disable', async () => {
            await ok(api.PATCH('/api/v1/products/{productKey}/devices/{deviceName}', { ...base, body: { disabled: d.status !== 'DISABLED' } }));
            return d.status === 'DISABLED' ? `${d.deviceName} may connect again.` : `${d.deviceName} is disabled: it is disconnected and refused at CONNECT.`;
          })}>{d.status === 'DISABLED' ? 'Enable' : 'Disable'}</button>
          <button className="btn" disabled={!connected} onClick={() => void act('Disconnect', async () => {
            const r = await ok(api.POST('/api/v1/products/{productKey}/devices/{deviceName}/disconnect', base));
            return `${r.disconnected} connection${r.disconnected === 1 ? '' : 's'} ended.`;
          })}>Disconnect now</button>
          <button className="btn danger" onClick={() => {
            if (!confirm(`Delete device ${d.deviceName}? It is disconnected and its credentials are gone. This cannot be undone.`)) return;
            void ok(api.DELETE('/api/v1/products/{productKey}/devices/{deviceName}', base)).then(() => navigate(`/products/${encodeURIComponent(productKey)}`), (e: unknown) => setNotice({ kind: 'error', text: `Delete: ${(e as Error).message}` }));
          }}>Delete</button>
        </div>
      </div>
      {notice && <Banner kind={notice.kind} onClose={() => setNotice(null)}>{notice.text}</Banner>}

      <div className="cards">
        <div className="card stat"><div className="stat-label">Last seen</div><div className="stat-value small-value" title={d.lastOnlineAt ?? undefined}>{formatTime(d.lastOnlineAt)}</div></div>
        <div className="card stat"><div className="stat-label">Address</div><div className="stat-value small-value">{d.clientAddress ? <code>{d.clientAddress}</code> : '—'}</div></div>
        <div className="card stat"><div className="stat-label">Username · SN</div><div className="stat-value small-value">{d.username ?? '—'} · {d.sn ?? '—'}</div></div>
        <div className="card stat" data-testid="device-certificate"><div className="stat-label">Client certificate</div>
          {d.certificate === null ? <div className="stat-value small-value">—</div> : (
            <div className="sub">CN <code>{d.certificate.cn ?? '—'}</code><br />serial <code>{d.certificate.serial}</code><br />issuer {d.certificate.issuer}
              <br />SHA-256 <code className="wrap">{d.certificate.fingerprint256}</code></div>
          )}</div>
      </div>

      <div className="two-col">
        <section>
          <h2>Sessions</h2>
          <Sessions sessions={sessions.data?.items ?? null} />
          <h2>Properties</h2>
          {Object.keys(d.properties).length === 0 ? <p className="hint">No properties reported (an Alink property post sets them).</p> : (
            <table className="table compact" data-testid="device-properties">
              <thead><tr><th>Name</th><th>Value</th></tr></thead>
              <tbody>{Object.entries(d.properties).map(([name, value]) => <tr key={name}><td><code>{name}</code></td><td><code>{JSON.stringify(value)}</code></td></tr>)}</tbody>
            </table>
          )}
          <h2>Send a message down</h2>
          <SendMessage productKey={productKey} deviceName={deviceName} onSent={() => reload.current()} />
        </section>
        <section>
          <h2>Connection events</h2>
          <Timeline events={events.data} />
          <h2>Recent messages <Link to={`/messages?gatewayId=${p.gatewayId}&deviceName=${encodeURIComponent(d.deviceName)}`}>live →</Link></h2>
          <RecentMessages messages={messages.data?.items ?? null} />
        </section>
      </div>
    </div>
  );
}

function Sessions({ sessions }: { sessions: DeviceSession[] | null }) {
  if (sessions === null) return <Spinner />;
  if (sessions.length === 0) return <p className="hint" data-testid="no-session">No session: the device is not connected and keeps none on a running gateway.</p>;
  return (
    <>
      {sessions.map((s) => (
        <div className="card panel" key={`${s.gatewayId}/${s.clientId}`} data-session={s.clientId}>
          <div className="label-line">
            Client id <code>{s.clientId}</code> · {s.connected ? <>connected from <code>{s.address ?? '?'}</code> (MQTT {s.protocolVersion === 5 ? '5' : '3.1.1'})</> : <>offline since {formatTime(s.disconnectedAt)}</>}
            {' · '}expires {s.expiryIntervalSeconds === 4294967295 ? 'never' : s.expiryIntervalSeconds === 0 ? 'with its connection' : `${s.expiryIntervalSeconds} s after it`}
          </div>
          <div className="sub">Subscriptions</div>
          {s.subscriptions.length === 0 ? <p className="hint">None.</p> : (
            <ul className="plain">{s.subscriptions.map((sub) => <li key={sub.filter} data-subscription={sub.filter}><code>{sub.filter}</code> QoS {sub.qos}</li>)}</ul>
          )}
          <div className="sub" data-testid="session-counts">{s.inflight} in flight · {s.queued} queued ({s.queuedBytes} bytes)</div>
          {s.pending.length > 0 && (
            <table className="table compact">
              <thead><tr><th>State</th><th>Topic</th><th>QoS</th><th>Bytes</th></tr></thead>
              <tbody>{s.pending.map((m, i) => <tr key={i} data-pending={m.state}><td>{m.state === 'IN_FLIGHT' ? 'in flight' : 'queued'}</td><td><code>{m.topic}</code></td><td>{m.qos}</td><td>{m.bytes}</td></tr>)}</tbody>
            </table>
          )}
        </div>
      ))}
    </>
  );
}

function Timeline({ events }: { events: ConnectionEvent[] | null }) {
  if (events === null) return <Spinner />;
  if (events.length === 0) return <p className="hint">No connection events kept for this device.</p>;
  return (
    <table className="table compact" data-testid="device-events">
      <thead><tr><th>When</th><th>Event</th><th>Reason</th><th>Sent</th><th>From</th></tr></thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.id} data-event-reason={e.reason} className={e.type === 'CONNECT_REFUSED' ? 'row-bad' : ''}>
            <td title={e.at}>{formatTime(e.lastAt)}{e.count > 1 ? ` (×${e.count})` : ''}</td>
            <td>{e.type.replace(/_/g, ' ').toLowerCase()}</td>
            <td><code>{e.reason}</code>{e.detail && <div className="sub">{e.detail}</div>}</td>
            <td>{e.mqttReasonCode === null ? '—' : `0x${e.mqttReasonCode.toString(16).padStart(2, '0')}`}</td>
            <td>{e.address ?? '—'}{e.clientId && <div className="sub">client {e.clientId}</div>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RecentMessages({ messages }: { messages: Message[] | null }) {
  if (messages === null) return <Spinner />;
  if (messages.length === 0) return <Empty title="No messages stored">Messages the device publishes appear here.</Empty>;
  return (
    <table className="table compact" data-testid="device-messages">
      <thead><tr><th>When</th><th>Topic</th><th>Payload</th></tr></thead>
      <tbody>
        {messages.map((m) => {
          const payload = decodePayload(m.payload);
          return (
            <tr key={m.id} data-message-topic={m.topic}>
              <td title={m.receivedAt}>{formatTime(m.receivedAt)}</td>
              <td><code>{m.topic}</code> <span className="sub">QoS {m.qos}</span></td>
              <td><code className="wrap">{payload.text ?? payload.hex}</code>{m.parsed && <div className="sub">{JSON.stringify(m.parsed)}</div>}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

const OUTCOME: Record<DownlinkResult['result'], string> = {
  ACKED: 'Delivered: the device acknowledged it (PUBACK).',
  SENT: 'Sent to the device.',
  REFUSED: 'Refused: the device answered with a failure reason code.',
  TIMEOUT: 'Sent, but the device did not acknowledge it in time.',
  NOT_SUBSCRIBED: 'Not sent: the device is connected but not subscribed to this topic.',
  OFFLINE: 'Not sent: the device is not connected.',
  DROPPED: 'Not sent: the device is connected and subscribed, but the message is larger than it accepts, or it is not reading fast enough.',
};

function SendMessage({ productKey, deviceName, onSent }: { productKey: string; deviceName: string; onSent: () => void }) {
  const [topic, setTopic] = useState('');
  const [payload, setPayload] = useState('');
  const [encoding, setEncoding] = useState<'text' | 'hex' | 'base64'>('text');
  const [qos, setQos] = useState<0 | 1>(1);
  const [result, setResult] = useState<{ kind: 'ok' | 'warn' | 'error'; text: string; field?: string | null } | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    try {
      const r = await ok(api.POST('/api/v1/products/{productKey}/devices/{deviceName}/messages', {
        params: { path: { productKey, deviceName } }, body: { topic, payload, encoding, qos },
      }));
      const code = r.reasonCode === undefined ? '' : ` (reason code 0x${r.reasonCode.toString(16)})`;
      setResult({ kind: r.result === 'ACKED' || r.result === 'SENT' ? 'ok' : 'warn', text: OUTCOME[r.result] + code });
      onSent();
    } catch (err) {
      setResult({ kind: 'error', text: (err as Error).message, field: err instanceof ApiError ? err.field : null });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card panel" onSubmit={(e) => void submit(e)} noValidate data-testid="send-message">
      <Field label="Topic" htmlFor="dl-topic" required error={result?.field === 'topic' ? result.text : null}>
        <input id="dl-topic" value={topic} onChange={(e) => setTopic(e.target.value)} placeholder="devices/…/commands" />
      </Field>
      <Field label="Payload" htmlFor="dl-payload" error={result?.field === 'payload' ? result.text : null}>
        <textarea id="dl-payload" className="mono" rows={3} value={payload} onChange={(e) => setPayload(e.target.value)} />
      </Field>
      <div className="row">
        <Field label="Payload is" htmlFor="dl-encoding">
          <select id="dl-encoding" value={encoding} onChange={(e) => setEncoding(e.target.value as typeof encoding)}>
            <option value="text">Text (UTF-8)</option><option value="hex">Hex</option><option value="base64">Base64</option>
          </select>
        </Field>
        <Field label="QoS" htmlFor="dl-qos">
          <select id="dl-qos" value={qos} onChange={(e) => setQos(Number(e.target.value) as 0 | 1)}><option value={1}>1 (acknowledged)</option><option value={0}>0</option></select>
        </Field>
      </div>
      {result && result.field !== 'topic' && result.field !== 'payload' && <Banner kind={result.kind}>{result.text}</Banner>}
      <button type="submit" className="btn primary" disabled={busy}>Send</button>
    </form>
  );
}
