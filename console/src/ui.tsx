/** Small building blocks shared by the pages: fields with their error, status badges, copy, empty states. */
import { useEffect, useState, type ChangeEvent, type MouseEvent, type ReactNode } from 'react';
import { navigate } from './router.ts';

export function Link({ to, children, className }: { to: string; children: ReactNode; className?: string }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={onClick} className={className}>{children}</a>;
}

export function Field({ label, htmlFor, hint, error, children, required }: {
  label: string; htmlFor?: string; hint?: ReactNode; error?: string | null; children: ReactNode; required?: boolean;
}) {
  return (
    <div className={`field${error ? ' has-error' : ''}`}>
      <label htmlFor={htmlFor}>{label}{required && <span className="req" aria-hidden>*</span>}</label>
      {children}
      {hint && !error && <div className="hint">{hint}</div>}
      {error && <div className="error-text" role="alert" data-field-error={htmlFor}>{error}</div>}
    </div>
  );
}

export function Toggle({ id, checked, onChange, label }: { id: string; checked: boolean; onChange: (v: boolean) => void; label: string }) {
  return (
    <label className="toggle" htmlFor={id}>
      <input id={id} type="checkbox" role="switch" checked={checked} onChange={(e) => onChange(e.target.checked)} />
      <span className="track" aria-hidden><span className="thumb" /></span>
      <span>{label}</span>
    </label>
  );
}

const STATUS_CLASS: Record<string, string> = {
  RUNNING: 'ok', ONLINE: 'ok', STOPPED: 'muted', OFFLINE: 'muted', INACTIVE: 'muted', ERROR: 'bad', DISABLED: 'warn',
};

export function StatusBadge({ status, title }: { status: string; title?: string | null }) {
  return (
    <span className={`badge ${STATUS_CLASS[status] ?? 'muted'}`} title={title ?? undefined} data-status={status}>
      <span className="dot" aria-hidden />{status.charAt(0) + status.slice(1).toLowerCase()}
    </span>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard API needs a secure context; fall back to a hidden textarea.
      const ta = document.createElement('textarea');
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      document.execCommand('copy');
      ta.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return (
    <button type="button" className="btn tiny ghost" onClick={() => void copy()} aria-label={`${label} ${text}`}>
      {copied ? 'Copied' : label}
    </button>
  );
}

export function Empty({ title, children, action }: { title: string; children?: ReactNode; action?: ReactNode }) {
  return (
    <div className="empty">
      <div className="empty-icon" aria-hidden>◇</div>
      <h3>{title}</h3>
      {children && <p>{children}</p>}
      {action}
    </div>
  );
}

export function Banner({ kind, children, onClose }: { kind: 'error' | 'ok' | 'warn' | 'info'; children: ReactNode; onClose?: () => void }) {
  return (
    <div className={`banner ${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      <div>{children}</div>
      {onClose && <button type="button" className="btn tiny ghost" onClick={onClose} aria-label="Dismiss">×</button>}
    </div>
  );
}

/** A gateway's warnings (GW_WARN_…): trouble that has not stopped it yet, each with the field to look at. */
export function GatewayWarnings({ warnings }: { warnings: readonly { code: string; message: string; field: string }[] }) {
  return (
    <Banner kind="warn">
      <strong>Before devices notice:</strong>
      <ul className="warnings">{warnings.map((w) => (
        <li key={`${w.code}${w.field}${w.message}`} data-warning={w.code}><code>{w.field}</code>: {w.message}</li>
      ))}</ul>
    </Banner>
  );
}

/** A PEM text area with an "upload file" button; the file's text replaces the field. */
export function PemInput({ id, value, onChange, placeholder, rows = 6 }: {
  id: string; value: string; onChange: (v: string) => void; placeholder?: string; rows?: number;
}) {
  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (file) onChange(await file.text());
    e.target.value = '';
  };
  return (
    <div className="pem">
      <textarea id={id} className="mono" rows={rows} value={value} spellCheck={false} placeholder={placeholder}
        onChange={(e) => onChange(e.target.value)} />
      <div className="pem-actions">
        <label className="btn tiny ghost file-btn">
          Upload PEM file
          <input type="file" accept=".pem,.crt,.cer,.key,.txt,application/x-pem-file" onChange={(e) => void onFile(e)} data-upload-for={id} />
        </label>
        {value !== '' && <button type="button" className="btn tiny ghost" onClick={() => onChange('')}>Clear</button>}
      </div>
    </div>
  );
}

export function Spinner() {
  return <span className="spinner" aria-label="Loading" />;
}

export function formatTime(iso: string | null): string {
  if (iso === null) return '—';
  const d = new Date(iso);
  const diff = (Date.now() - d.getTime()) / 1000;
  if (diff < 60) return 'just now';
  if (diff < 3600) return `${Math.floor(diff / 60)} min ago`;
  if (diff < 86400) return `${Math.floor(diff / 3600)} h ago`;
  return d.toLocaleString();
}

/** Loads once (and on `deps` change); `reload` for after an action. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[] = []): { data: T | null; error: Error | null; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => { if (live) { setData(d); setError(null); setLoading(false); } },
      (e: unknown) => { if (live) { setError(e as Error); setLoading(false); } },
    );
    return () => { live = false; };
  }, [...deps, tick]);
  return { data, error, loading, reload: () => setTick((t) => t + 1) };
}
