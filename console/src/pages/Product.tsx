/**
 * A product's page: its gateway, exact device counts per status, its devices a page at a time (searched and
 * filtered by the server), import with progress, add, disable.
 */
import { Fragment, useEffect, useRef, useState, type ChangeEvent, type FormEvent } from 'react';
import { effectiveRules } from '../acl.ts';
import { api, ApiError, ok, type AccessControl, type Device, type DeviceListQuery, type ImportOperation } from '../api.ts';
import { openStream } from '../stream.ts';
import { Banner, CopyButton, Empty, Field, formatTime, Link, Spinner, StatusBadge, useLoad } from '../ui.tsx';
import { checkDeviceName, checkPassword, checkUsername } from '../validation.ts';

const PAGE_SIZE = 50;
/** Typing pauses this long before the list is searched: one request per word, not per key. */
const SEARCH_DEBOUNCE_MS = 300;
const STATUS_OPTIONS = [['', 'All statuses'], ['online', 'Online'], ['offline', 'Offline'], ['inactive', 'Never connected'], ['disabled', 'Disabled']] as const;
const count = (n: number) => n.toLocaleString('en-US');

export function ProductPage({ productKey }: { productKey: string }) {
  const product = useLoad(async () => {
    const p = await ok(api.GET('/api/v1/products/{productKey}', { params: { path: { productKey } } }));
    const g = await ok(api.GET('/api/v1/gateways/{id}', { params: { path: { id: p.gatewayId } } })).catch(() => null);
    return { product: p, gateway: g };
  }, [productKey]);
  // The list is paged and searched by the server (a product may hold 100,000 devices): `cursors` is the way
  // back, the cursor of each page shown so far (undefined for the first).
  const [searchText, setSearchText] = useState('');
  const [search, setSearch] = useState('');
  const [status, setStatus] = useState('');
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    const timer = setTimeout(() => {
      if (searchText.trim() === search) return;
      setSearch(searchText.trim());
      setCursors([undefined]);
    }, SEARCH_DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [searchText, search]);
  const query: DeviceListQuery = { limit: PAGE_SIZE, cursor, search: search === '' ? undefined : search, status: status === '' ? undefined : status };
  const pageUrl = `${productKey}?${JSON.stringify(query)}`;
  // Each answer carries the query it answers: until the one asked for arrives, the rows of the last stay in
  // view, but the range and "Next" wait (a stale cursor would skip or repeat a page).
  const devices = useLoad(async () => ({
    url: pageUrl,
    page: await ok(api.GET('/api/v1/products/{productKey}/devices', { params: { path: { productKey }, query } })),
  }), [pageUrl]);
  const current = devices.data?.url === pageUrl ? devices.data.page : null;
  const [panel, setPanel] = useState<'none' | 'import' | 'add'>('none');
  const [actionError, setActionError] = useState<string | null>(null);
  const [rulesOf, setRulesOf] = useState<string | null>(null);
  const reloadRef = useRef(() => { devices.reload(); product.reload(); });
  reloadRef.current = () => { devices.reload(); product.reload(); };

  // Online/offline events from the live stream refresh the page and the counts at once; a slow poll covers the rest.
  const gatewayId = product.data?.product.gatewayId;
  useEffect(() => {
    if (gatewayId === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = () => {
      clearTimeout(timer);
      timer = setTimeout(() => reloadRef.current(), 200);
    };
    const stream = openStream({ gatewayId, types: 'online,offline' }, refresh, () => undefined);
    const poll = setInterval(() => reloadRef.current(), 10_000);
    return () => { stream.close(); clearInterval(poll); clearTimeout(timer); };
  }, [gatewayId]);

  const toggleDisabled = async (d: Device) => {
    setActionError(null);
    try {
      await ok(api.PATCH('/api/v1/products/{productKey}/devices/{deviceName}', {
        params: { path: { productKey, deviceName: d.deviceName } }, body: { disabled: d.status !== 'DISABLED' },
      }));
    } catch (e) {
      setActionError(`${d.deviceName}: ${(e as Error).message}`);
    }
    reloadRef.current();
  };

  if (product.error) return <div className="page"><Banner kind="error">{product.error.message}</Banner><Link to="/products">Back to products</Link></div>;
  if (product.data === null) return <div className="page"><Spinner /></div>;
  const { product: p, gateway: g } = product.data;
  const items = current?.items ?? devices.data?.page.items ?? [];
  const c = p.deviceCounts;
  const first = (cursors.length - 1) * PAGE_SIZE;
  const filtered = search !== '' || status !== '';

  return (
    <div className="page">
      <div className="crumbs"><Link to="/products">Products</Link> / {p.name}</div>
      <div className="page-head">
        <div>
          <h1>{p.name}</h1>
          <p className="muted-text">Product key <code>{p.productKey}</code> <CopyButton text={p.productKey} /></p>
        </div>
        <div className="head-actions">
          <button className="btn" onClick={() => setPanel(panel === 'add' ? 'none' : 'add')}>+ Add device</button>
          <button className="btn primary" onClick={() => setPanel(panel === 'import' ? 'none' : 'import')}>Import CSV</button>
        </div>
      </div>

      <div className="cards">
        <div className="card stat"><div className="stat-label">Gateway</div><div className="stat-value">{g ? g.name : '—'}</div>
          {g && <StatusBadge status={g.status} title={g.statusReason} />}</div>
        <div className="card stat"><div className="stat-label">Gateway URL</div><div className="stat-value small-value"><code>{g?.url ?? '—'}</code></div>
          {g && <CopyButton text={g.url} />}</div>
        <div className="card stat"><div className="stat-label">Verification</div>
          <div className="stat-value small-value">{g ? g.authType === 'ONE_PARTY' ? 'One-party (imported rows)' : `Third-party (${g.thirdParty?.provider === 'HTTPS' ? 'HTTPS' : `function ${g.thirdParty?.functionName ?? ''}`})` : '—'}</div>
          {g?.x509.enabled && <span className="badge muted">X.509</span>}</div>
        <div className="card stat"><div className="stat-label">Devices</div>
          <div className="stat-value" data-testid="device-counts">{count(c.online)} online / {count(p.deviceCount)}</div>
          <div className="sub" data-testid="device-status-counts">{count(c.offline)} offline · {count(c.inactive)} never connected · {count(c.disabled)} disabled</div>
          <Link to={`/messages?gatewayId=${p.gatewayId}`}>Live messages →</Link></div>
      </div>

      {panel === 'import' && <ImportPanel productKey={productKey} onDone={() => reloadRef.current()} />}
      {panel === 'add' && <AddDevicePanel productKey={productKey} onDone={() => reloadRef.current()} />}
      {actionError && <Banner kind="error" onClose={() => setActionError(null)}>{actionError}</Banner>}

      <h2>Devices</h2>
      {p.deviceCount === 0 && !filtered ? (
        <Empty title="No devices yet" action={<button className="btn primary" onClick={() => setPanel('import')}>Import a CSV file</button>}>
          {g?.authType === 'THIRD_PARTY'
            ? 'With third-party verification, devices appear here on their first accepted connection. You can also import rows.'
            : 'Import your devices\' credentials as CSV (sn,username,password), or add them one by one. They can connect right away.'}
        </Empty>
      ) : (
        <>
          <div className="list-tools">
            <input type="search" aria-label="Search devices" placeholder="Name, username or SN starts with…" value={searchText}
              onChange={(e) => setSearchText(e.target.value)} />
            <select aria-label="Status" value={status} onChange={(e) => { setStatus(e.target.value); setCursors([undefined]); }}>
              {STATUS_OPTIONS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
            </select>
            <span className="muted-text" data-testid="device-range">
              {current === null ? '' : current.total === 0 ? 'No device matches'
                : `${count(first + 1)}–${count(first + current.items.length)} of ${count(current.total)}${filtered ? ' matching' : ''}`}
            </span>
            {devices.loading && <Spinner />}
            <span className="pager">
              <button className="btn small" aria-label="Previous page" disabled={cursors.length === 1 || current === null}
                onClick={() => setCursors(cursors.slice(0, -1))}>← Previous</button>
              <button className="btn small" aria-label="Next page" disabled={!current?.nextCursor}
                onClick={() => { const next = current?.nextCursor; if (next) setCursors([...cursors, next]); }}>Next →</button>
            </span>
          </div>
          {devices.error && <Banner kind="error">{devices.error.message}</Banner>}
          <div className="table-wrap">
            <table className="table devices">
              <thead><tr><th>Device</th><th>Status</th><th>Last seen</th><th>Address</th><th>Certificate CN</th><th>SN</th><th className="actions">Actions</th></tr></thead>
              <tbody>
                {items.map((d) => (
                  <Fragment key={d.deviceName}>
                  <tr data-device={d.deviceName}>
                    <td data-label="Device"><Link to={`/products/${encodeURIComponent(productKey)}/devices/${encodeURIComponent(d.deviceName)}`}><strong>{d.deviceName}</strong></Link>
                      <div className="sub">{d.username !== null && d.username !== d.deviceName ? `user ${d.username} · ` : ''}{d.origin === 'AUTO_CREATED' ? 'created on first connect' : 'imported'}</div></td>
                    <td data-label="Status"><StatusBadge status={d.status} /></td>
                    <td data-label="Last seen" title={d.lastOnlineAt ?? undefined}>{formatTime(d.lastOnlineAt)}</td>
                    <td data-label="Address">{d.clientAddress ? <code>{d.clientAddress}</code> : '—'}</td>
                    <td data-label="Certificate CN">{d.certificate?.cn ?? '—'}</td>
                    <td data-label="SN">{d.sn ?? '—'}</td>
                    <td data-label="Actions" className="actions">
                      <Link to={`/messages?gatewayId=${p.gatewayId}&deviceName=${encodeURIComponent(d.deviceName)}`} className="btn small">Messages</Link>
                      <button className="btn small" aria-expanded={rulesOf === d.deviceName}
                        onClick={() => setRulesOf(rulesOf === d.deviceName ? null : d.deviceName)}>Access</button>
                      <button className={`btn small${d.status === 'DISABLED' ? '' : ' danger'}`} onClick={() => void toggleDisabled(d)}>
                        {d.status === 'DISABLED' ? 'Enable' : 'Disable'}
                      </button>
                    </td>
                  </tr>
                  {rulesOf === d.deviceName && g && (
                    <tr className="detail" data-rules-of={d.deviceName}><td colSpan={7}><DeviceRules access={g.accessControl} device={d} /></td></tr>
                  )}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </div>
  );
}

/** Polls an import operation this often while it runs. */
const IMPORT_POLL_MS = 500;
/** Refreshes the device list this often while an import runs. */
const LIST_REFRESH_MS = 5000;

function ImportPanel({ productKey, onDone }: { productKey: string; onDone: () => void }) {
  const [operation, setOperation] = useState<ImportOperation | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [fileName, setFileName] = useState<string | null>(null);
  const mounted = useRef(true);
  useEffect(() => () => { mounted.current = false; }, []);
  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    e.target.value = '';
    if (!file) return;
    setFileName(file.name);
    setBusy(true);
    setError(null);
    setOperation(null);
    try {
      const text = await file.text();
      // An operation: the server answers at once and the import runs there; its progress is polled.
      let op = await ok(api.POST('/api/v1/products/{productKey}/imports', {
        params: { path: { productKey } }, body: text, bodySerializer: (csv) => csv, headers: { 'content-type': 'text/csv' },
      }));
      setOperation(op);
      let listedAt = Date.now();
      while (op.state === 'RUNNING' && mounted.current) {
        await new Promise((resolve) => setTimeout(resolve, IMPORT_POLL_MS));
        op = await ok(api.GET('/api/v1/products/{productKey}/imports/{importId}', { params: { path: { productKey, importId: op.id } } }));
        if (mounted.current) setOperation(op);
        // The list and counts follow the import now and then, not at every poll.
        if (Date.now() - listedAt > LIST_REFRESH_MS) {
          listedAt = Date.now();
          onDone();
        }
      }
      if (op.state === 'FAILED' && op.error) setError(`The import stopped: ${op.error.message}. ${op.created} rows were imported before it.`);
      onDone();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      if (mounted.current) setBusy(false);
    }
  };
  const running = operation?.state === 'RUNNING';
  return (
    <div className="card panel">
      <h3>Import devices from CSV</h3>
      <p className="hint">Columns <code>sn,username,password</code>, one device per line. A header line is optional; with one, the columns may come in any order
        and a <code>deviceName</code> column may be added (default: the username). Up to 100,000 rows; each row succeeds or fails on its own.</p>
      <pre className="sample">sn,username,password{'\n'}SN0001,sensor-0001,s3cret-1{'\n'}SN0002,sensor-0002,s3cret-2</pre>
      <label className="btn primary file-btn">
        {busy ? 'Importing…' : 'Choose CSV file'}
        <input type="file" accept=".csv,text/csv" onChange={(e) => void onFile(e)} disabled={busy} data-testid="csv-input" />
      </label>
      {fileName && <span className="muted-text"> {fileName}</span>}
      {running && operation && (
        <div className="import-progress" data-testid="import-progress">
          <progress max={operation.total} value={operation.processed} />
          <span> {count(operation.processed)} of {count(operation.total)} rows · {count(operation.created)} created · {count(operation.failed)} failed</span>
        </div>
      )}
      {error && <Banner kind="error">{error}</Banner>}
      {operation && operation.state === 'DONE' && (
        <div className="import-result" data-testid="import-result">
          <Banner kind={operation.failed === 0 ? 'ok' : operation.created === 0 ? 'error' : 'warn'}>
            {operation.created} of {operation.total} rows imported{operation.failed > 0 ? `, ${operation.failed} failed` : ''}.
          </Banner>
          {operation.failures.length > 0 && (
            <div className="table-wrap">
              <table className="table compact">
                <thead><tr><th>Row</th><th>Error</th></tr></thead>
                <tbody>
                  {operation.failures.map((r) => (
                    <tr key={r.row} className="row-bad">
                      <td>{r.row}</td>
                      <td>{r.error?.field && <code>{r.error.field}</code>} {r.error?.message}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {operation.failuresOmitted > 0 && <p className="hint">…and {count(operation.failuresOmitted)} more failed rows.</p>}
            </div>
          )}
        </div>
      )}
    </div>
  );
}

function AddDevicePanel({ productKey, onDone }: { productKey: string; onDone: () => void }) {
  const [values, setValues] = useState({ username: '', password: '', sn: '', deviceName: '' });
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const [serverError, setServerError] = useState<{ field: string | null; message: string } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const local: Record<string, string | null> = {
    username: checkUsername(values.username),
    password: checkPassword(values.password),
    sn: values.sn.length > 64 ? 'SN must be at most 64 printable characters' : null,
    deviceName: checkDeviceName(values.deviceName),
  };
  const errorFor = (f: string) => (serverError?.field === f ? serverError.message : touched.has(f) ? local[f] ?? null : null);
  const set = (f: keyof typeof values, v: string) => {
    setValues((s) => ({ ...s, [f]: v }));
    setTouched((t) => new Set(t).add(f));
    if (serverError?.field === f) setServerError(null);
  };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setTouched(new Set(Object.keys(values)));
    if (Object.values(local).some((x) => x !== null)) return;
    try {
      const d = await ok(api.POST('/api/v1/products/{productKey}/devices', {
        params: { path: { productKey } },
        body: {
          username: values.username, password: values.password, sn: values.sn === '' ? null : values.sn,
          ...(values.deviceName === '' ? {} : { deviceName: values.deviceName }),
        },
      }));
      setDone(`Device ${d.deviceName} added.`);
      setValues({ username: '', password: '', sn: '', deviceName: '' });
      setTouched(new Set());
      onDone();
    } catch (err) {
      setServerError({ field: err instanceof ApiError ? err.field : null, message: (err as Error).message });
    }
  };
  return (
    <form className="card panel" onSubmit={(e) => void submit(e)} noValidate>
      <h3>Add a device</h3>
      <div className="row">
        <Field label="Username" htmlFor="dev-username" required error={errorFor('username')}><input id="dev-username" value={values.username} onChange={(e) => set('username', e.target.value)} /></Field>
        <Field label="Password" htmlFor="dev-password" required error={errorFor('password')}><input id="dev-password" type="password" value={values.password} onChange={(e) => set('password', e.target.value)} /></Field>
      </div>
      <div className="row">
        <Field label="SN" htmlFor="dev-sn" error={errorFor('sn')}><input id="dev-sn" value={values.sn} onChange={(e) => set('sn', e.target.value)} /></Field>
        <Field label="Device name" htmlFor="dev-name" error={errorFor('deviceName')} hint="Default: the username"><input id="dev-name" value={values.deviceName} onChange={(e) => set('deviceName', e.target.value)} /></Field>
      </div>
      {serverError && serverError.field === null && <Banner kind="error">{serverError.message}</Banner>}
      {done && <Banner kind="ok">{done}</Banner>}
      <button type="submit" className="btn primary">Add device</button>
    </form>
  );
}

/** A device's effective topic rules: the gateway's, with this device's values in the placeholders. */
function DeviceRules({ access, device }: { access: AccessControl; device: Device }) {
  const rules = effectiveRules(access, device);
  const verb = { ALL: 'publish and subscribe', PUBLISH: 'publish', SUBSCRIBE: 'subscribe' } as const;
  return (
    <div className="device-rules" data-testid="device-rules">
      <div className="label-line">Effective topic rules of {device.deviceName}</div>
      {rules.length === 0 ? <p className="hint">No rules: everything is {access.defaultAction === 'ALLOW' ? 'allowed' : 'refused'}.</p> : (
        <ol>
          {rules.map((r, i) => (
            <li key={i} data-effective-rule={i}>
              <strong>{r.action === 'ALLOW' ? 'Allow' : 'Deny'}</strong> {verb[r.access]} <code>{r.filled ?? r.topic}</code>
              {r.filled === null && <span className="muted-text"> — never matches this device (a placeholder has no usable value)</span>}
              {r.perConnection && <span className="muted-text"> — ${'{clientId}'} is each connection's client id</span>}
            </li>
          ))}
          <li data-effective-rule="default">Otherwise: <strong>{access.defaultAction === 'ALLOW' ? 'allow' : 'deny'}</strong></li>
        </ol>
      )}
      <p className="hint">Rules a verification function or HTTPS service returns for this device apply first, per connection.</p>
    </div>
  );
}
