/** Verification functions: write, dry-run (invoke) and save. */
import { useState, type FormEvent } from 'react';
import { api, ApiError, ok, type InvokeResult, type VerificationFunction } from '../api.ts';
import { Banner, Empty, Field, Spinner, useLoad } from '../ui.tsx';
import { checkFunctionName } from '../validation.ts';

const TEMPLATE = `// Decides whether a device may connect. Runs in a sandbox: no network, time and memory limited.
async function handler(event) {
  // event: { userName, password, clientId, certificateCommonName }
  if (event.userName && event.password === 'secret-' + event.userName) {
    return { result: 'true', deviceName: event.userName };
  }
  return { result: 'false', message: 'unknown device' };
}
`;

const DECISION_CLASS: Record<string, string> = { ACCEPT: 'ok', REJECT: 'warn', SERVER_UNAVAILABLE: 'bad' };

export function FunctionsPage() {
  const list = useLoad(() => ok(api.GET('/api/v1/functions')));
  const [selected, setSelected] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  // The editor keeps its state (dry-run result included) across its own saves; a new choice starts afresh.
  const [editorKey, setEditorKey] = useState(0);
  const startNew = () => { setCreating(true); setSelected(null); setEditorKey((k) => k + 1); };
  const items = list.data?.items ?? [];
  const current = items.find((f) => f.name === selected) ?? null;
  const showEditor = creating || selected !== null;
  return (
    <div className="page">
      <div className="page-head">
        <div>
          <h1>Functions</h1>
          <p className="muted-text">Verification functions decide third-party CONNECTs: <code>handler(event)</code> returns <code>{'{ result, deviceName, message }'}</code>.</p>
        </div>
        <button className="btn primary" onClick={startNew}>+ New function</button>
      </div>
      {list.error && <Banner kind="error">{list.error.message}</Banner>}
      <div className="split">
        <div className="side-list">
          {list.loading && list.data === null ? <Spinner /> : items.length === 0 && !creating ? (
            <Empty title="No functions yet" action={<button className="btn primary" onClick={startNew}>Write a function</button>}>
              A function lets your own logic accept or refuse devices, and name them.
            </Empty>
          ) : (
            <ul>
              {items.map((f) => (
                <li key={f.name}><button className={f.name === selected ? 'active' : ''} onClick={() => { setSelected(f.name); setCreating(false); setEditorKey((k) => k + 1); }}>
                  <strong>{f.name}</strong><span className="sub">{f.timeoutMs} ms · {f.memoryMb} MB</span></button></li>
              ))}
            </ul>
          )}
        </div>
        <div className="grow">
          {showEditor
            ? <FunctionEditor key={editorKey} fn={current} onSaved={(name) => { setCreating(false); setSelected(name); list.reload(); }}
              onDeleted={() => { setSelected(null); list.reload(); }} />
            : items.length > 0 && <div className="card muted-text pad">Choose a function to edit and test, or write a new one.</div>}
        </div>
      </div>
    </div>
  );
}

function FunctionEditor({ fn, onSaved, onDeleted }: { fn: VerificationFunction | null; onSaved: (name: string) => void; onDeleted: () => void }) {
  const [name, setName] = useState(fn?.name ?? '');
  const [source, setSource] = useState(fn?.source ?? TEMPLATE);
  const [timeoutMs, setTimeoutMs] = useState(String(fn?.timeoutMs ?? 5000));
  const [memoryMb, setMemoryMb] = useState(String(fn?.memoryMb ?? 64));
  const [nameTouched, setNameTouched] = useState(false);
  const [serverError, setServerError] = useState<{ field: string | null; message: string } | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [input, setInput] = useState({ userName: 'sensor-0001', password: 'secret-sensor-0001', clientId: 'sensor-0001', certificateCommonName: '' });
  const [result, setResult] = useState<InvokeResult | null>(null);
  const [invokeError, setInvokeError] = useState<string | null>(null);
  const nameError = serverError?.field === 'name' ? serverError.message : nameTouched ? checkFunctionName(name) : null;
  const errorFor = (f: string) => (serverError?.field === f ? serverError.message : null);

  const save = async (e?: FormEvent): Promise<boolean> => {
    e?.preventDefault();
    setNameTouched(true);
    if (fn === null && checkFunctionName(name) !== null) return false;
    setServerError(null);
    setSaved(null);
    try {
      await ok(api.PUT('/api/v1/functions/{name}', { params: { path: { name } }, body: { source, timeoutMs: Number(timeoutMs), memoryMb: Number(memoryMb) } }));
      setSaved(`Saved "${name}". Gateways that use it pick up the new version on the next CONNECT.`);
      onSaved(name);
      return true;
    } catch (err) {
      setServerError({ field: err instanceof ApiError ? err.field : null, message: (err as Error).message });
      return false;
    }
  };

  const dryRun = async () => {
    setInvokeError(null);
    setResult(null);
    // The dry run calls the stored function: save the draft first.
    if (!(await save())) return;
    try {
      setResult(await ok(api.POST('/api/v1/functions/{name}/invoke', {
        params: { path: { name } },
        body: {
          userName: input.userName, password: input.password, clientId: input.clientId,
          certificateCommonName: input.certificateCommonName === '' ? null : input.certificateCommonName,
        },
      })));
    } catch (err) {
      setInvokeError((err as Error).message);
    }
  };

  const remove = async () => {
    if (fn === null || !confirm(`Delete function "${fn.name}"?`)) return;
    try {
      await ok(api.DELETE('/api/v1/functions/{name}', { params: { path: { name: fn.name } } }));
      onDeleted();
    } catch (err) {
      setServerError({ field: null, message: (err as Error).message });
    }
  };

  return (
    <form className="card form" onSubmit={(e) => void save(e)} noValidate>
      <Field label="Name" htmlFor="fn-name" required error={nameError} hint="1-64 characters: letters, digits, - and _.">
        <input id="fn-name" value={name} disabled={fn !== null} onChange={(e) => { setName(e.target.value); setNameTouched(true); if (serverError?.field === 'name') setServerError(null); }} />
      </Field>
      <Field label="Source" htmlFor="fn-source" required error={errorFor('source')}>
        <textarea id="fn-source" className="mono code" rows={14} spellCheck={false} value={source} onChange={(e) => { setSource(e.target.value); if (serverError?.field === 'source') setServerError(null); }} />
      </Field>
      <div className="row">
        <Field label="Time limit (ms)" htmlFor="fn-timeout" error={errorFor('timeoutMs')} hint="10-30000"><input id="fn-timeout" inputMode="numeric" value={timeoutMs} onChange={(e) => setTimeoutMs(e.target.value)} /></Field>
        <Field label="Memory limit (MB)" htmlFor="fn-memory" error={errorFor('memoryMb')} hint="8-256"><input id="fn-memory" inputMode="numeric" value={memoryMb} onChange={(e) => setMemoryMb(e.target.value)} /></Field>
      </div>
      {serverError && serverError.field === null && <Banner kind="error">{serverError.message}</Banner>}
      {saved && <Banner kind="ok">{saved}</Banner>}
      <div className="form-actions">
        {fn !== null && <button type="button" className="btn danger" onClick={() => void remove()}>Delete</button>}
        <button type="submit" className="btn primary">Save</button>
      </div>

      <fieldset>
        <legend>Dry run</legend>
        <p className="hint">Saves the function, then calls it once with this CONNECT input and shows what a device would get.</p>
        <div className="row">
          <Field label="userName" htmlFor="in-user"><input id="in-user" value={input.userName} onChange={(e) => setInput({ ...input, userName: e.target.value })} /></Field>
          <Field label="password" htmlFor="in-pass"><input id="in-pass" value={input.password} onChange={(e) => setInput({ ...input, password: e.target.value })} /></Field>
        </div>
        <div className="row">
          <Field label="clientId" htmlFor="in-client"><input id="in-client" value={input.clientId} onChange={(e) => setInput({ ...input, clientId: e.target.value })} /></Field>
          <Field label="certificateCommonName" htmlFor="in-cn"><input id="in-cn" value={input.certificateCommonName} onChange={(e) => setInput({ ...input, certificateCommonName: e.target.value })} /></Field>
        </div>
        <button type="button" className="btn" onClick={() => void dryRun()}>Save and run</button>
        {invokeError && <Banner kind="error">{invokeError}</Banner>}
        {result && (
          <div className={`result ${DECISION_CLASS[result.decision.result] ?? ''}`} data-testid="invoke-result">
            <div><span className={`badge ${DECISION_CLASS[result.decision.result] ?? 'muted'}`}><span className="dot" />{result.decision.result}</span>
              {result.decision.deviceName && <> as <strong>{result.decision.deviceName}</strong></>}
              {result.decision.reason && <> · {result.decision.reason}</>}{result.decision.message && <> · {result.decision.message}</>}</div>
            {result.error && <div className="bad-text"><strong>{result.error.kind}</strong>: {result.error.message}{result.error.line !== undefined && ` (line ${result.error.line})`}</div>}
            {result.output && <pre>{JSON.stringify(result.output, null, 2)}</pre>}
            {result.logs.length > 0 && <pre className="logs">{result.logs.map((l) => `[${l.level}] ${l.message}`).join('\n')}</pre>}
            <div className="muted-text">{result.durationMs.toFixed(1)} ms</div>
          </div>
        )}
      </fieldset>
    </form>
  );
}
