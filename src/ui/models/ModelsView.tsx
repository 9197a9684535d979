import { Fragment, useCallback, useEffect, useState } from 'react';
import {
  deleteFromLibrary,
  type LibraryEntry,
  listLibrary,
  loadFromLibrary,
  saveToLibrary,
} from '../../storage/modelLibrary.ts';
import { type LoadedModel, type ModelOrigin, useModelStore } from '../../store/modelStore.ts';
import { DropZone, FilePickButton } from '../common/DropZone.tsx';
import { baseName, downloadBlob, formatBytes } from '../common/download.ts';
import { EngineStatusBar } from '../common/EngineStatusBar.tsx';
import { isWeightsName, type PickedFile } from '../common/files.ts';
import { LongMessage } from '../common/LongMessage.tsx';
import { describeConfig, formatCount, modelFileBytes } from './modelFile.ts';

const ORIGIN_LABELS: Record<ModelOrigin, string> = {
  default: 'default model',
  file: 'from a file',
  library: 'from the library',
  training: 'trained here',
};

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? value.toLocaleString('en') : String(Number(value.toPrecision(5)));
}

/** A record value in a line: long number series are summarised. */
function recordValue(value: unknown): string {
  if (Array.isArray(value) && value.length > 6 && value.every((v) => typeof v === 'number')) {
    const numbers = value as number[];
    return `${numbers.length} values, first ${formatNumber(numbers[0]!)}, last ${formatNumber(numbers.at(-1)!)}`;
  }
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) {
    return value.map((v) => (typeof v === 'number' ? formatNumber(v) : v)).join(', ');
  }
  if (typeof value === 'number') return formatNumber(value);
  if (typeof value === 'string' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A metadata record (training, evaluation) as nested facts. */
function RecordView({ record, testId }: { record: Record<string, unknown>; testId?: string }) {
  return (
    <dl className="facts compact" data-testid={testId}>
      {Object.entries(record).map(([key, value]) =>
        isRecord(value) ? (
          <Fragment key={key}>
            <dt>{key}</dt>
            <dd>
              <RecordView record={value} />
            </dd>
          </Fragment>
        ) : (
          <DetailRow key={key} label={key} value={recordValue(value)} />
        ),
      )}
    </dl>
  );
}

function CurrentModel({ model, onSaved }: { model: LoadedModel; onSaved(): void }) {
  const [name, setName] = useState(baseName(model.name));
  const [message, setMessage] = useState<{ text: string; error: boolean }>();
  useEffect(() => setName(baseName(model.name)), [model.name]);
  const c = model.config;
  const config: [string, string][] = [
    ['Encoder', `${c.encoder} (channels ${c.encoderChannels.join(', ')})`],
    ['Decoder widths', c.dims.join(', ')],
    ['Decoder depths', c.depths.join(', ')],
    ['Scan', `${c.scan}, ${c.directions} directions`],
    ['State size', String(c.dState)],
    ['Input size', `${c.inputSize} × ${c.inputSize}`],
  ];
  const save = async () => {
    setMessage(undefined);
    try {
      const entryName = name.trim() || baseName(model.name);
      await saveToLibrary(entryName, modelFileBytes(model), describeConfig(model));
      setMessage({ text: `Saved "${entryName}" to the library.`, error: false });
      onSaved();
    } catch (error) {
      setMessage({ text: `Could not save to the library: ${errorText(error)}`, error: true });
    }
  };
  const download = () => {
    const file = `${name.trim() || baseName(model.name)}.safetensors`;
    downloadBlob(
      new Blob([modelFileBytes(model) as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }),
      file,
    );
  };
  return (
    <section className="panel" data-testid="current-model">
      <h3 className="panel-title">
        Current model <span className="badge neutral">{model.origin ? ORIGIN_LABELS[model.origin] : 'loaded'}</span>
      </h3>
      <dl className="facts">
        <dt>Name</dt>
        <dd data-testid="current-model-name">{model.name}</dd>
        <dt>File size</dt>
        <dd>{formatBytes(model.bytes.byteLength)}</dd>
        <dt>Parameters</dt>
        <dd data-testid="current-model-parameters">
          {formatCount(model.parameterCount)} ({model.parameterCount.toLocaleString('en')})
        </dd>
        <dt>Threshold</dt>
        <dd>
          <ThresholdInput value={model.threshold} />
        </dd>
        {config.map(([key, value]) => (
          <DetailRow key={key} label={key} value={value} />
        ))}
      </dl>
      <div className="save-row">
        <label className="field inline">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.currentTarget.value)} aria-label="Model name" />
        </label>
        <button type="button" className="button primary" onClick={save} data-testid="save-to-library">
          Save to library
        </button>
        <button type="button" className="button" onClick={download}>
          Download .safetensors
        </button>
      </div>
      <p className="muted small">Saved and downloaded files include the model's threshold.</p>
      {message && (
        <p className={message.error ? 'error-text' : 'ok-text'} role="status">
          {message.text}
        </p>
      )}
      <h4>Training record</h4>
      {model.trainingRecord ? (
        <RecordView record={model.trainingRecord} testId="training-record" />
      ) : (
        <p className="muted">This file has no training record.</p>
      )}
      {model.evaluationRecord && (
        <>
          <h4>Evaluation record</h4>
          <RecordView record={model.evaluationRecord} testId="evaluation-record" />
        </>
      )}
    </section>
  );
}

function parse(text: string): number | undefined {
  return text.trim() === '' ? undefined : Number(text);
}

/** The model's decision threshold (saved in its file); empty means not set. */
function ThresholdInput({ value }: { value: number | undefined }) {
  const setThreshold = useModelStore((s) => s.setThreshold);
  const [text, setText] = useState(value === undefined ? '' : String(value));
  // Follow changes made elsewhere (e.g. Inspect), without rewriting what is being typed ("0." is 0).
  useEffect(
    () => setText((typed) => (parse(typed) === value ? typed : value === undefined ? '' : String(value))),
    [value],
  );
  const valid = text.trim() === '' || Number.isFinite(Number(text));
  return (
    <input
      className={`threshold-input${valid ? '' : ' invalid'}`}
      inputMode="decimal"
      placeholder="not set"
      aria-label="Model threshold"
      data-testid="model-threshold"
      value={text}
      onChange={(e) => {
        const next = e.currentTarget.value;
        setText(next);
        if (next.trim() === '') setThreshold(undefined);
        else if (Number.isFinite(Number(next))) setThreshold(Number(next));
      }}
    />
  );
}

function DetailRow({ label, value }: { label: string; value: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </>
  );
}

function NoModel() {
  const defaultModel = useModelStore((s) => s.defaultModel);
  return (
    <section className="panel" data-testid="no-model">
      <h3 className="panel-title">No model loaded</h3>
      {defaultModel === 'absent' && (
        <p>
          This build has no default model (<code>/models/default.safetensors</code> was not found).
        </p>
      )}
      <p>To get one:</p>
      <ul>
        <li>Load a MambaAD Studio weights file (.safetensors) with the button on the right, or drop it here.</li>
        <li>
          Train one in the Train tab, or on a GPU server with <code>npx mambaad train</code>.
        </li>
        <li>
          Convert an official MambaAD checkpoint with <code>training/reference/convert_official.py</code>.
        </li>
      </ul>
    </section>
  );
}

function Library({ entries, refresh }: { entries: LibraryEntry[] | undefined; refresh(): void }) {
  const loadModel = useModelStore((s) => s.loadModel);
  const [message, setMessage] = useState<string>();
  const act = async (work: () => Promise<void>) => {
    setMessage(undefined);
    try {
      await work();
    } catch (error) {
      setMessage(errorText(error));
    }
    refresh();
  };
  return (
    <section className="panel" data-testid="model-library">
      <h3 className="panel-title">Library</h3>
      <p className="muted small">Models kept in this browser (IndexedDB), available offline.</p>
      {entries === undefined ? (
        <p className="muted">Reading the library…</p>
      ) : entries.length === 0 ? (
        <p className="muted">The library is empty. Save the current model to keep it here.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Saved</th>
              <th>Size</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {entries.map((entry) => (
              <tr key={entry.id} data-testid="library-entry" data-name={entry.name}>
                <td>
                  <div>{entry.name}</div>
                  <div className="muted small">{entry.description}</div>
                </td>
                <td>{new Date(entry.savedAt).toLocaleString()}</td>
                <td>{formatBytes(entry.size)}</td>
                <td className="actions">
                  <button
                    type="button"
                    className="button small"
                    onClick={() =>
                      act(async () => {
                        await loadModel(await loadFromLibrary(entry.id), entry.name, 'library');
                      })
                    }
                  >
                    Load
                  </button>
                  <button
                    type="button"
                    className="button small"
                    onClick={() =>
                      act(async () => {
                        const bytes = await loadFromLibrary(entry.id);
                        downloadBlob(new Blob([bytes as Uint8Array<ArrayBuffer>]), `${entry.name}.safetensors`);
                      })
                    }
                  >
                    Download
                  </button>
                  <button
                    type="button"
                    className="button small danger"
                    onClick={() => {
                      if (window.confirm(`Delete "${entry.name}" from the library?`))
                        void act(() => deleteFromLibrary(entry.id));
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {message && (
        <p className="error-text" role="alert">
          {message}
        </p>
      )}
    </section>
  );
}

/** Load and save weights files, the local library, and what the current model is. */
export function ModelsView() {
  const model = useModelStore((s) => s.model);
  const error = useModelStore((s) => s.error);
  const loading = useModelStore((s) => s.loading);
  const defaultModel = useModelStore((s) => s.defaultModel);
  const loadModel = useModelStore((s) => s.loadModel);
  const loadDefaultModel = useModelStore((s) => s.loadDefaultModel);
  const [entries, setEntries] = useState<LibraryEntry[]>();
  const [libraryError, setLibraryError] = useState<string>();
  const refresh = useCallback(() => {
    listLibrary().then(
      (list) => {
        setEntries(list);
        setLibraryError(undefined);
      },
      (failure) => {
        setEntries([]);
        setLibraryError(errorText(failure));
      },
    );
  }, []);
  useEffect(refresh, [refresh]);
  const open = async (files: PickedFile[]) => {
    const picked = files.find((f) => isWeightsName(f.file.name)) ?? files[0];
    if (picked) await loadModel(new Uint8Array(await picked.file.arrayBuffer()), picked.file.name, 'file');
  };
  return (
    <DropZone onFiles={open} hint="Drop a .safetensors weights file to load it" className="models" testId="models-view">
      <EngineStatusBar />
      {loading && (
        <div className="notice" data-testid="model-loading">
          Checking {loading}…
        </div>
      )}
      {error && (
        <div className="notice error" role="alert" data-testid="model-error">
          <strong>The file was not loaded.</strong> <LongMessage text={error} />
          {model && <span className="muted"> The current model ({model.name}) is still loaded.</span>}
        </div>
      )}
      <div className="models-grid">
        <div className="models-column">{model ? <CurrentModel model={model} onSaved={refresh} /> : <NoModel />}</div>
        <div className="models-column">
          <section className="panel">
            <h3 className="panel-title">Load a model</h3>
            <p className="muted small">A MambaAD Studio weights file (.safetensors), picked or dropped on this page.</p>
            <div className="button-row">
              <FilePickButton
                label="Open weights file…"
                accept=".safetensors"
                onFiles={open}
                testId="model-file-input"
                primary
              />
              <button
                type="button"
                className="button"
                disabled={defaultModel === 'checking'}
                onClick={() => loadDefaultModel(true)}
              >
                Load the default model
              </button>
            </div>
            {defaultModel === 'absent' && (
              <p className="muted small" data-testid="default-absent">
                No default model in this build.
              </p>
            )}
          </section>
          <Library entries={entries} refresh={refresh} />
          {libraryError && (
            <p className="error-text" role="alert">
              The library is not available: {libraryError}
            </p>
          )}
        </div>
      </div>
    </DropZone>
  );
}
