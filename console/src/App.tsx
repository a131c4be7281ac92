/** Sign-in, the frame (header and navigation) and the page for the current path. */
import { useEffect, useState, type FormEvent } from 'react';
import { ApiError, apiWithToken, getToken, ok, onUnauthorized, setToken } from './api.ts';
import { match, navigate, usePath } from './router.ts';
import { Field, Link } from './ui.tsx';
import { GatewaysPage } from './pages/Gateways.tsx';
import { GatewayFormPage } from './pages/GatewayForm.tsx';
import { ProductsPage } from './pages/Products.tsx';
import { DevicePage } from './pages/Device.tsx';
import { ProductPage } from './pages/Product.tsx';
import { FunctionsPage } from './pages/Functions.tsx';
import { MessagesPage } from './pages/Messages.tsx';

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [token, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await ok(apiWithToken(token.trim()).GET('/api/v1/gateways'));
      setToken(token.trim());
      onSignedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'This is not the admin token.' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={(e) => void submit(e)}>
        <div className="brand big"><span className="logo" aria-hidden>⌂</span> Gatehouse</div>
        <p className="muted-text">MQTT access gateway console. Sign in with the admin token: <code>GATEHOUSE_ADMIN_TOKEN</code>,
          or the one printed on first start (saved as <code>admin-token</code> in the data directory).</p>
        <Field label="Admin token" htmlFor="token" error={error}>
          <input id="token" type="password" autoComplete="current-password" value={token} onChange={(e) => setValue(e.target.value)} autoFocus />
        </Field>
        <button className="btn primary wide" type="submit" disabled={busy || token.trim() === ''}>{busy ? 'Checking…' : 'Sign in'}</button>
      </form>
    </div>
  );
}

const NAV = [
  { to: '/gateways', label: 'Gateways' },
  { to: '/products', label: 'Products' },
  { to: '/functions', label: 'Functions' },
  { to: '/messages', label: 'Messages' },
];

function Page({ path }: { path: string }) {
  if (path === '/' || path === '/gateways') return <GatewaysPage />;
  if (path === '/gateways/new') return <GatewayFormPage />;
  const edit = match('/gateways/:id/edit', path);
  if (edit) return <GatewayFormPage id={edit.id} />;
  if (path === '/products') return <ProductsPage />;
  const device = match('/products/:key/devices/:name', path);
  if (device) return <DevicePage productKey={device.key!} deviceName={device.name!} />;
  const product = match('/products/:key', path);
  if (product) return <ProductPage productKey={product.key!} />;
  if (path === '/functions') return <FunctionsPage />;
  if (path === '/messages') return <MessagesPage />;
  return (
    <div className="page">
      <h1>Not found</h1>
      <p>There is no page at <code>{path}</code>. <Link to="/gateways">Go to the gateways</Link>.</p>
    </div>
  );
}

export function App() {
  const [signedIn, setSignedIn] = useState(getToken() !== null);
  const path = usePath();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => onUnauthorized(() => {
    setToken(null);
    setSignedIn(false);
  }), []);
  useEffect(() => setMenuOpen(false), [path]);

  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  const section = '/' + (path.split('/')[1] || 'gateways');
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/gateways" className="brand"><span className="logo" aria-hidden>⌂</span> Gatehouse</Link>
        <button type="button" className="btn ghost menu-btn" aria-label="Menu" aria-expanded={menuOpen} onClick={() => setMenuOpen(!menuOpen)}>☰</button>
        <nav className={menuOpen ? 'open' : ''}>
          {NAV.map((n) => (
            <Link key={n.to} to={n.to} className={section === n.to ? 'active' : ''}>{n.label}</Link>
          ))}
          <a href="/api/docs" target="_blank" rel="noreferrer">API docs</a>
          <button type="button" className="btn ghost small" onClick={() => { setToken(null); setSignedIn(false); navigate('/'); }}>Sign out</button>
        </nav>
      </header>
      <main>
        <Page path={path} />
      </main>
    </div>
  );
}
