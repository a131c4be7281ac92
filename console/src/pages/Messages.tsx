/** Live device messages (raw and parsed) from /stream, after the latest stored ones from /messages. */
import { useEffect, useState } from 'react';
import { api, ok, type Message, type StreamQuery } from '../api.ts';
import { navigate, useQuery } from '../router.ts';
import { decodePayload } from '../payload.ts';
import { openStream } from '../stream.ts';
import { Banner, Empty, Field, useLoad } from '../ui.tsx';

const KEEP = 200;

interface Presence { id: string; type: 'online' | 'offline'; deviceName: string; at: string; clientAddress?: string | null }

export function MessagesPage() {
  const query = useQuery();
  const gatewayId = query.get('gatewayId') ?? '';
  const deviceName = query.get('deviceName') ?? '';
  const gateways = useLoad(() => ok(api.GET('/api/v1/gateways')));
  const [messages, setMessages] = useState<Message[]>([]);
  const [presence, setPresence] = useState<Presence[]>([]);
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const [deviceDraft, setDeviceDraft] = useState(deviceName);

  useEffect(() => {
    const filter: StreamQuery = {};
    if (gatewayId !== '') filter.gatewayId = gatewayId;
    if (deviceName !== '') filter.deviceName = deviceName;
    let live = true;
    setMessages([]);
    setPresence([]);
    setError(null);
    ok(api.GET('/api/v1/messages', { params: { query: { ...filter, limit: 50 } } })).then(
      (r) => { if (live) setMessages((m) => mergeMessages(m, r.items)); },
      (e: Error) => { if (live) setError(e.message); },
    );
    const stream = openStream(filter, (event) => {
      if (event.type === 'message') setMessages((m) => mergeMessages(m, [event.data as Message]));
      else if (event.type === 'online' || event.type === 'offline') {
        const d = event.data as Omit<Presence, 'id' | 'type'>;
        setPresence((p) => [{ id: event.id, type: event.type as Presence['type'], ...d }, ...p].slice(0, 20));
      }
    }, setConnected);
    return () => { live = false; stream.close(); };
  }, [gatewayId, deviceName]);

  const setFilter = (g: string, d: string) => {
    const q = new URLSearchParams();
    if (g !== '') q.set('gatewayId', g);
    if (d !== '') q.set('deviceName', d);
    const qs = q.toString();
    navigate(`/messages${qs === '' ? '' : `?${qs}`}`);
  };

  const [frozen, setFrozen] = useState<Message[] | null>(null);
  const shown = paused ? frozen ?? messages : messages;
  const gatewayName = (id: string) => gateways.data?.items.find((g) => g.id === id)?.name ?? id;

  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Messages</h1>
          <p className="muted-text">Device uplinks as they arrive: raw bytes and what the gateway's parsing script made of them.</p>
        </div>
        <span className={`live ${connected ? 'on' : 'off'}`} data-testid="stream-state"><span className="dot" />{connected ? 'Live' : 'Connecting…'}</span>
      </div>
      <form className="filters card" onSubmit={(e) => { e.preventDefault(); setFilter(gatewayId, deviceDraft.trim()); }}>
        <Field label="Gateway" htmlFor="filter-gateway">
          <select id="filter-gateway" value={gatewayId} onChange={(e) => setFilter(e.target.value, deviceName)}>
            <option value="">All gateways</option>
            {(gateways.data?.items ?? []).map((g) => <option key={g.id} value={g.id}>{g.name}</option>)}
          </select>
        </Field>
        <Field label="Device" htmlFor="filter-device">
          <input id="filter-device" value={deviceDraft} placeholder="All devices" onChange={(e) => setDeviceDraft(e.target.value)}
            onBlur={() => { if (deviceDraft.trim() !== deviceName) setFilter(gatewayId, deviceDraft.trim()); }} />
        </Field>
        <div className="filter-actions">
          <button type="button" className="btn" onClick={() => { setFrozen(paused ? null : messages); setPaused(!paused); }}>{paused ? 'Resume' : 'Pause'}</button>
          <button type="button" className="btn ghost" onClick={() => { setMessages([]); setFrozen(null); setPresence([]); }}>Clear</button>
        </div>
      </form>
      {error && <Banner kind="error">{error}</Banner>}
      {presence.length > 0 && (
        <div className="presence">
          {presence.slice(0, 6).map((p) => (
            <span key={p.id} className={`badge ${p.type === 'online' ? 'ok' : 'muted'}`}><span className="dot" />{p.deviceName} {p.type}
              {p.clientAddress ? ` from ${p.clientAddress}` : ''} · {new Date(p.at).toLocaleTimeString()}</span>
          ))}
        </div>
      )}
      {shown.length === 0 ? (
        <Empty title="No messages yet">
          Messages appear here live as devices publish. Connect a device to a gateway's URL and publish to any topic
          {gatewayId !== '' || deviceName !== '' ? ', or widen the filter' : ''}.
        </Empty>
      ) : (
        <ul className="messages" data-testid="messages">
          {shown.map((m) => {
            const payload = decodePayload(m.payload);
            return (
              <li key={m.id} className="card message" data-message-topic={m.topic}>
                <div className="message-head">
                  <code className="topic">{m.topic}</code>
                  <span className="sub">{m.deviceName} · {gatewayName(m.gatewayId)} · QoS {m.qos} · {new Date(m.receivedAt).toLocaleTimeString()}</span>
                </div>
                <div className="message-body">
                  <div>
                    <div className="label-line">Raw</div>
                    <pre className="raw">{payload.text ?? payload.hex}</pre>
                    {payload.text !== null && <div className="sub mono">{payload.hex}</div>}
                  </div>
                  <div>
                    <div className="label-line">Parsed</div>
                    {m.parseError ? <pre className="bad-text">{m.parseError}</pre>
                      : m.parsed ? <pre className="parsed">{JSON.stringify(m.parsed, null, 2)}</pre>
                        : <div className="sub">No parsing script on this gateway</div>}
                  </div>
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

function mergeMessages(current: Message[], incoming: Message[]): Message[] {
  const byId = new Map(current.map((m) => [m.id, m]));
  for (const m of incoming) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)).slice(0, KEEP);
}
