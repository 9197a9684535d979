import { useEffect, useMemo, useState } from 'react';
import { type DirectionCount, isScanOrder, SCAN_ORDERS } from '../../model/scanOrders.ts';
import { useGpuStore } from '../../store/gpuStore.ts';
import { type LoadedModel, useModelStore } from '../../store/modelStore.ts';
import { useTrainingStore } from '../../store/trainingStore.ts';
import type { TrainingHostOptions } from '../../worker/trainingClient.ts';
import type { StartTrainingRequest } from '../../worker/trainingProtocol.ts';
import { FilePickButton } from '../common/DropZone.tsx';
import type { PickedFile } from '../common/files.ts';
import { listSampleSets, type SampleSet } from '../evaluate/datasetSource.ts';
import { MODEL_SIZES, type ModelSize, scratchConfig } from './modelSizes.ts';
import { SavedRunBanner, TrainRunPanel } from './TrainRunPanel.tsx';
import { type TrainForm, useTrainForm } from './trainForm.ts';
import { chooseImages, pickedGroup, readImages, sampleSetGroup, type TrainingImageGroup } from './trainingImages.ts';

let sampleSetsLoading: Promise<TrainingImageGroup[]> | undefined;

/** The sample sets' train/good images, listed once per page. */
function useSampleGroups(): TrainingImageGroup[] | undefined {
  const [groups, setGroups] = useState<TrainingImageGroup[]>();
  useEffect(() => {
    let active = true;
    sampleSetsLoading ??= listSampleSets().then((sets: SampleSet[]) =>
      sets.map(sampleSetGroup).filter((g) => g.images.length > 0),
    );
    void sampleSetsLoading.then((g) => active && setGroups(g));
    return () => {
      active = false;
    };
  }, []);
  return groups;
}

function wholeNumber(text: string, what: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`${what} must be a whole number of at least ${min}`);
  return value;
}

/** A number in [0, 1) (or (0, 1) when `positive`). */
function fraction(text: string, what: string, positive: boolean): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value < 1) || (positive && value === 0)) {
    throw new Error(`${what} must be a number ${positive ? 'above' : 'of at least'} 0 and below 1`);
  }
  return value;
}

/** The request for the worker (images still unread), or why the form cannot start. */
function buildRequest(
  form: TrainForm,
  imageCount: number,
  model: LoadedModel | undefined,
): Omit<StartTrainingRequest, 'images'> {
  const batch = wholeNumber(form.batch, 'The batch', 2);
  const epochs = wholeNumber(form.epochs, 'Epochs', 1);
  if (imageCount === 0) throw new Error('Choose normal images to train on: a sample set, files or a folder.');
  if (imageCount < batch) {
    throw new Error(
      `${imageCount} image${imageCount === 1 ? '' : 's'} for a batch of ${batch}: choose more images or a smaller batch.`,
    );
  }
  if (form.source === 'fine-tune' && !model) throw new Error('No model is loaded to fine-tune; load one in Models.');
  const name = form.modelName.trim();
  if (!name) throw new Error('Give the trained model a name.');
  return {
    modelName: name,
    source:
      form.source === 'fine-tune' && model
        ? { kind: 'fine-tune', name: model.name, weights: model.bytes }
        : { kind: 'scratch', config: scratchConfig(form.size, form.scan, form.directions) },
    options: {
      epochs,
      batch,
      seed: wholeNumber(form.seed, 'The seed', 0),
      lr: fraction(form.lr, 'The learning rate', true),
      dropPathRate: fraction(form.dropPath, 'The drop-path rate', false),
    },
    checkpointEvery: wholeNumber(form.checkpointEvery, 'Checkpoint every', 1),
    weightsDtype: form.weightsDtype,
  };
}

/** What the worker needs from this page: a picked encoder weights file (a copy: it is handed over) and the budget. */
function hostOptions(form: TrainForm): TrainingHostOptions {
  const gigabytes = Number(form.memoryBudget);
  if (!(gigabytes > 0)) throw new Error('The GPU memory budget must be a positive number of GB.');
  return {
    gpuMemoryBudgetBytes: gigabytes * 1e9,
    ...(form.encoderWeights ? { encoderWeights: form.encoderWeights.bytes.slice() } : {}),
  };
}

function ImagesSection(props: { sampleGroups: TrainingImageGroup[] | undefined; total: number; chosen: number }) {
  const form = useTrainForm();
  const [note, setNote] = useState<string>();
  const addPicked = (files: PickedFile[]) => {
    const { group, skipped } = pickedGroup(files, `picked:${crypto.randomUUID()}`);
    setNote(
      skipped > 0
        ? `${skipped} file${skipped === 1 ? ' is' : 's are'} not an image and ${skipped === 1 ? 'was' : 'were'} left out.`
        : undefined,
    );
    if (group.images.length > 0) form.update({ picked: [...form.picked, group] });
  };
  const toggleSet = (name: string, on: boolean) =>
    form.update({ sampleSets: on ? [...form.sampleSets, name] : form.sampleSets.filter((n) => n !== name) });
  return (
    <section className="panel">
      <h3 className="panel-title">1 · Normal images</h3>
      <p className="muted">
        Defect-free images of the objects or textures to inspect (MambaAD learns what normal looks like).
      </p>
      {props.sampleGroups === undefined && <p className="muted">Looking for sample sets…</p>}
      {props.sampleGroups && props.sampleGroups.length > 0 && (
        <div className="train-sets" data-testid="train-sample-sets">
          {props.sampleGroups.map((g) => (
            <label key={g.id} className="checkbox">
              <input
                type="checkbox"
                data-testid={`train-set-${g.label}`}
                checked={form.sampleSets.includes(g.label)}
                onChange={(e) => toggleSet(g.label, e.currentTarget.checked)}
              />
              <span>
                <strong>{g.label}</strong>{' '}
                <span className="muted">
                  {g.detail}, {g.images.length} images
                </span>
              </span>
            </label>
          ))}
        </div>
      )}
      <div className="button-row">
        <FilePickButton label="Add files…" multiple accept="image/*" testId="train-files-input" onFiles={addPicked} />
        <FilePickButton label="Add a folder…" folder testId="train-folder-input" onFiles={addPicked} />
      </div>
      {form.picked.length > 0 && (
        <ul className="train-picked">
          {form.picked.map((g) => (
            <li key={g.id}>
              <span>
                <strong>{g.label}</strong>{' '}
                <span className="muted">
                  {g.detail}, {g.images.length} images
                </span>
              </span>
              <button
                type="button"
                className="button small"
                onClick={() => form.update({ picked: form.picked.filter((p) => p.id !== g.id) })}
              >
                Remove
              </button>
            </li>
          ))}
        </ul>
      )}
      {note && <p className="notice">{note}</p>}
      <label className="field inline train-limit">
        <span>Use at most</span>
        <input
          type="number"
          min={2}
          placeholder="all"
          value={form.limit}
          data-testid="train-limit"
          onChange={(e) => form.update({ limit: e.currentTarget.value })}
        />
        <span className="muted">images, taken in turn from each set</span>
      </label>
      <p className="train-count" data-testid="train-image-count">
        {props.chosen} of {props.total} images chosen
      </p>
    </section>
  );
}

function ModelSection() {
  const form = useTrainForm();
  const model = useModelStore((s) => s.model);
  const config =
    form.source === 'fine-tune' && model ? model.config : scratchConfig(form.size, form.scan, form.directions);
  return (
    <section className="panel">
      <h3 className="panel-title">2 · Model</h3>
      <label className="checkbox">
        <input
          type="radio"
          name="train-source"
          checked={form.source === 'scratch'}
          onChange={() => form.update({ source: 'scratch' })}
        />
        <span>New model, from scratch</span>
      </label>
      <label className={`checkbox${model ? '' : ' disabled'}`}>
        <input
          type="radio"
          name="train-source"
          data-testid="train-source-finetune"
          disabled={!model}
          checked={form.source === 'fine-tune'}
          onChange={() => form.update({ source: 'fine-tune' })}
        />
        <span>
          Fine-tune the loaded model{' '}
          <span className="muted">{model ? `“${model.name}”` : '(none loaded: load one in Models)'}</span>
        </span>
      </label>
      {form.source === 'scratch' && (
        <div className="train-grid">
          <label className="field train-wide">
            <span>Size</span>
            <select
              value={form.size}
              data-testid="train-size"
              onChange={(e) => form.update({ size: e.currentTarget.value as ModelSize, sizeChosen: true })}
            >
              {(Object.keys(MODEL_SIZES) as ModelSize[]).map((size) => (
                <option key={size} value={size}>
                  {MODEL_SIZES[size].label}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Scan</span>
            <select
              value={form.scan}
              data-testid="train-scan"
              onChange={(e) => {
                const scan = e.currentTarget.value;
                if (isScanOrder(scan)) form.update({ scan });
              }}
            >
              {SCAN_ORDERS.map((scan) => (
                <option key={scan} value={scan}>
                  {scan}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Directions</span>
            <select
              value={form.directions}
              data-testid="train-directions"
              onChange={(e) => form.update({ directions: Number(e.currentTarget.value) as DirectionCount })}
            >
              {[2, 4, 8].map((d) => (
                <option key={d} value={d}>
                  {d}
                </option>
              ))}
            </select>
          </label>
        </div>
      )}
      <p className="muted small" data-testid="train-config">
        {form.source === 'scratch' && `${MODEL_SIZES[form.size].detail}. `}
        ResNet18 encoder (frozen) · {config.inputSize} × {config.inputSize} input · decoder depths{' '}
        {config.depths.join('·')} · {config.scan} scan × {config.directions} directions
      </p>
    </section>
  );
}

function NumberField(props: {
  label: string;
  value: string;
  onChange(value: string): void;
  testId: string;
  min?: number;
  step?: string;
}) {
  return (
    <label className="field">
      <span>{props.label}</span>
      <input
        type="number"
        min={props.min}
        step={props.step}
        value={props.value}
        data-testid={props.testId}
        onChange={(e) => props.onChange(e.currentTarget.value)}
      />
    </label>
  );
}

function ScheduleSection(props: { stepsPerEpoch: number }) {
  const form = useTrainForm();
  const epochs = Number(form.epochs);
  return (
    <section className="panel">
      <h3 className="panel-title">3 · Schedule</h3>
      <div className="train-grid">
        <NumberField
          label="Epochs"
          value={form.epochs}
          min={1}
          testId="train-epochs"
          onChange={(epochs) => form.update({ epochs })}
        />
        <NumberField
          label="Batch"
          value={form.batch}
          min={2}
          testId="train-batch"
          onChange={(batch) => form.update({ batch })}
        />
        <NumberField
          label="Checkpoint every (steps)"
          value={form.checkpointEvery}
          min={1}
          testId="train-checkpoint-every"
          onChange={(checkpointEvery) => form.update({ checkpointEvery })}
        />
      </div>
      <p className="muted small" data-testid="train-schedule">
        {props.stepsPerEpoch === 0
          ? 'Every step needs a full batch: choose at least as many images as the batch.'
          : `${props.stepsPerEpoch} step${props.stepsPerEpoch === 1 ? '' : 's'} per epoch` +
            (Number.isInteger(epochs) && epochs > 0 ? `, ${props.stepsPerEpoch * epochs} in total` : '') +
            ' (the last partial batch of each epoch is left out; the learning rate drops ×0.1 at 80% of the steps).'}
      </p>
      <details className="train-advanced">
        <summary>Advanced</summary>
        <div className="train-grid">
          <NumberField
            label="Learning rate"
            value={form.lr}
            step="any"
            testId="train-lr"
            onChange={(lr) => form.update({ lr })}
          />
          <NumberField
            label="Drop path"
            value={form.dropPath}
            step="0.05"
            testId="train-drop-path"
            onChange={(dropPath) => form.update({ dropPath })}
          />
          <NumberField
            label="Seed"
            value={form.seed}
            min={0}
            testId="train-seed"
            onChange={(seed) => form.update({ seed })}
          />
          <label className="field">
            <span>Weights</span>
            <select
              value={form.weightsDtype}
              onChange={(e) => form.update({ weightsDtype: e.currentTarget.value === 'F16' ? 'F16' : 'F32' })}
            >
              <option value="F32">float32</option>
              <option value="F16">float16 (half the size)</option>
            </select>
          </label>
          <NumberField
            label="GPU memory (GB)"
            value={form.memoryBudget}
            step="any"
            testId="train-memory-budget"
            onChange={(memoryBudget) => form.update({ memoryBudget })}
          />
        </div>
        <div className="field">
          <span>Encoder weights</span>
          <FilePickButton
            label={form.encoderWeights ? form.encoderWeights.name : 'Choose a file…'}
            accept=".safetensors"
            testId="train-encoder-input"
            onFiles={async ([picked]) => {
              if (picked)
                form.update({
                  encoderWeights: { name: picked.file.name, bytes: new Uint8Array(await picked.file.arrayBuffer()) },
                });
            }}
          />
          <span className="muted">
            only when the studio does not serve resnet18-imagenet-l1-l3-bnfolded.safetensors
          </span>
        </div>
      </details>
    </section>
  );
}

/** The Train screen: choose normal images and a model, train in a worker, watch the loss, keep the result. */
export function TrainView() {
  const form = useTrainForm();
  const model = useModelStore((s) => s.model);
  const gpu = useGpuStore((s) => s.status);
  const training = useTrainingStore();
  const sampleGroups = useSampleGroups();
  const [reading, setReading] = useState<string>();
  const [formError, setFormError] = useState<string>();

  useEffect(() => void training.refreshSaved(), [training.refreshSaved]);
  // A software adapter gets the small model unless the user chose otherwise.
  useEffect(() => {
    if (gpu.state === 'ready' && gpu.isSoftwareAdapter && !form.sizeChosen) form.update({ size: 'small' });
  }, [gpu, form.sizeChosen, form.update]);

  const groups = useMemo(
    () => [...(sampleGroups ?? []).filter((g) => form.sampleSets.includes(g.label)), ...form.picked],
    [sampleGroups, form.sampleSets, form.picked],
  );
  const total = groups.reduce((n, g) => n + g.images.length, 0);
  const limit = form.limit.trim() === '' ? undefined : Math.max(0, Math.floor(Number(form.limit)) || 0);
  const chosen = Math.min(total, limit ?? total);
  const batch = Number(form.batch);
  const stepsPerEpoch = Number.isInteger(batch) && batch >= 2 ? Math.floor(chosen / batch) : 0;
  const busy =
    reading !== undefined ||
    training.phase === 'preparing' ||
    training.phase === 'running' ||
    training.phase === 'pausing' ||
    training.phase === 'paused' ||
    training.phase === 'stopping';

  const start = async () => {
    setFormError(undefined);
    try {
      const request = buildRequest(form, chosen, model);
      const entries = chooseImages(groups, limit);
      setReading(`Reading the images: 0 of ${entries.length}…`);
      const images = await readImages(entries, (done) =>
        setReading(`Reading the images: ${done} of ${entries.length}…`),
      );
      training.start({ ...request, images }, hostOptions(form));
    } catch (error) {
      setFormError(error instanceof Error ? error.message : String(error));
    } finally {
      setReading(undefined);
    }
  };

  return (
    <section className="train-view" data-testid="train-view">
      {training.saved && !busy && (
        <SavedRunBanner
          run={training.saved}
          onResume={() => {
            setFormError(undefined);
            try {
              training.resumeSaved(hostOptions(form));
            } catch (error) {
              setFormError(error instanceof Error ? error.message : String(error));
            }
          }}
        />
      )}
      <div className="train-layout">
        <form
          className="train-setup"
          onSubmit={(event) => {
            event.preventDefault();
            void start();
          }}
        >
          <fieldset disabled={busy} className="train-fieldset">
            <ImagesSection sampleGroups={sampleGroups} total={total} chosen={chosen} />
            <ModelSection />
            <ScheduleSection stepsPerEpoch={stepsPerEpoch} />
            <section className="panel">
              <h3 className="panel-title">4 · Result</h3>
              <label className="field">
                <span>Model name</span>
                <input
                  type="text"
                  value={form.modelName}
                  data-testid="train-model-name"
                  onChange={(e) => form.update({ modelName: e.currentTarget.value })}
                />
              </label>
              <p className="muted small">
                At the end the model is loaded into the studio and saved in the library (Models).
              </p>
            </section>
          </fieldset>
          <div className="train-start">
            <button type="submit" className="button primary large" data-testid="train-start" disabled={busy}>
              Start training
            </button>
            {reading && <span className="muted">{reading}</span>}
            {training.saved && !busy && <span className="muted">Starting a new run replaces the unfinished one.</span>}
          </div>
          {formError && (
            <p className="notice error" role="alert" data-testid="train-form-error">
              {formError}
            </p>
          )}
        </form>
        <div className="train-panel">
          <TrainRunPanel />
        </div>
      </div>
    </section>
  );
}
