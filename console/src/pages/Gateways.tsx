/** The gateway list: name, ID, URL (copy), status, product; start, stop, edit, delete. */
import { useEffect, useState } from 'react';
import { api, ok, type GatewayListItem } from '../api.ts';
import { takeFlash } from '../flash.ts';
import { navigate } from '../router.ts';
import { Banner, CopyButton, Empty, Link, Spinner, StatusBadge, useLoad } from '../ui.tsx';

export function GatewaysPage() {
  const { data, error, loading, reload } = useLoad(() => ok(api.GET('/api/v1/gateways')));
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [flash, setFlashState] = useState(takeFlash);

  // Status and client counts change on their own (a port taken, devices connecting).
  useEffect(() => {
    const t = setInterval(reload, 5000);
    return () => clearInterval(t);
  }, []);

  const act = async (g: GatewayListItem, action: 'start' | 'stop' | 'delete') => {
    if (action === 'delete' && !confirm(`Delete gateway "${g.name}" with its product and all its devices? This cannot be undone.`)) return;
    setBusy(g.id);
    setActionError(null);
    try {
      const path = { params: { path: { id: g.id } } };
      if (action === 'delete') await ok(api.DELETE('/api/v1/gateways/{id}', path));
      else {
        const result = await ok(api.POST(action === 'start' ? '/api/v1/gateways/{id}/start' : '/api/v1/gateways/{id}/stop', path));
        if (result.status === 'ERROR') setActionError(`${g.name}: ${result.statusReason ?? 'failed to start'}`);
      }
    } catch (e) {
      setActionError(`${g.name}: ${(e as Error).message}`);
    } finally {
      setBusy(null);
      reload();
    }
  };

  const items = data?.items ?? [];
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Gateways</h1>
          <p className="muted-text">Each gateway listens on its own port over TLS with the certificate of the server it replaces. Devices connect to its URL.</p>
        </div>
        <button className="btn primary" onClick={() => navigate('/gateways/new')}>+ Add Gateway</button>
      </div>
      {error && <Banner kind="error">{error.message}</Banner>}
      {flash && (
        <Banner kind={flash.kind} onClose={() => setFlashState(null)}>
          {flash.text}
          {flash.details && flash.details.length > 0 && <ul>{flash.details.map((d) => <li key={d}>{d}</li>)}</ul>}
        </Banner>
      )}
      {actionError && <Banner kind="error" onClose={() => setActionError(null)}>{actionError}</Banner>}
      {loading && data === null ? <Spinner /> : items.length === 0 ? (
        <Empty title="No gateways yet"
          action={<button className="btn primary" onClick={() => navigate('/gateways/new')}>Add your first gateway</button>}>
          A gateway takes the place of the MQTT server your devices already use. You need its certificate and private key
          (or generate a self-signed test certificate in the second step).
        </Empty>
      ) : (
        <div className="table-wrap">
          <table className="table gateways">
            <thead>
              <tr><th>Name</th><th>ID</th><th>Gateway URL</th><th>Status</th><th>Product</th><th className="actions">Actions</th></tr>
            </thead>
            <tbody>
              {items.map((g) => (
                <tr key={g.id} data-gateway={g.name}>
                  <td data-label="Name"><strong>{g.name}</strong>
                    <div className="sub">{g.authType === 'ONE_PARTY' ? 'One-party' : 'Third-party'} · {g.connectedClients} connected</div></td>
                  <td data-label="ID"><code className="id">{g.id}</code></td>
                  <td data-label="Gateway URL"><span className="url"><code>{g.url}</code><CopyButton text={g.url} /></span></td>
                  <td data-label="Status"><StatusBadge status={g.status} title={g.statusReason} />
                    {g.status === 'ERROR' && g.statusReason && <div className="sub bad-text">{g.statusReason}</div>}
                    {g.warnings.map((w) => <div key={`${w.code}${w.field}${w.message}`} className="sub warn-text" data-warning={w.code} title={w.field}>⚠ {w.message}</div>)}</td>
                  <td data-label="Product"><Link to={`/products/${g.productKey}`}>Gateway{g.id}</Link></td>
                  <td data-label="Actions" className="actions">
                    {g.enabled && g.status !== 'ERROR'
                      ? <button className="btn small" disabled={busy === g.id} onClick={() => void act(g, 'stop')}>Stop</button>
                      : <button className="btn small" disabled={busy === g.id} onClick={() => void act(g, 'start')}>Start</button>}
                    <button className="btn small" onClick={() => navigate(`/gateways/${g.id}/edit`)}>Edit</button>
                    <button className="btn small danger" disabled={busy === g.id} onClick={() => void act(g, 'delete')}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
