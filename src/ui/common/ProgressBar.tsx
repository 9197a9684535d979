/** Progress of a long job: a bar, the count, throughput and time left, and an optional Cancel button. */
export function ProgressBar(props: {
  done: number;
  total: number;
  imagesPerSecond?: number;
  etaSeconds?: number;
  label?: string;
  onCancel?(): void;
  testId?: string;
}) {
  const fraction = props.total > 0 ? props.done / props.total : 0;
  return (
    <div className="progress" data-testid={props.testId}>
      <div
        className="progress-track"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={props.total}
        aria-valuenow={props.done}
        aria-label={props.label ?? 'progress'}
      >
        <div className="progress-fill" style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
      </div>
      <span className="progress-text">
        {props.label ? `${props.label} ` : ''}
        {props.done} / {props.total}
        {props.imagesPerSecond !== undefined && props.imagesPerSecond > 0 && (
          <> · {formatRate(props.imagesPerSecond)}</>
        )}
        {props.etaSeconds !== undefined && Number.isFinite(props.etaSeconds) && props.done < props.total && (
          <> · {formatDuration(props.etaSeconds)} left</>
        )}
      </span>
      {props.onCancel && (
        <button type="button" className="button small" onClick={props.onCancel}>
          Cancel
        </button>
      )}
    </div>
  );
}

export function formatRate(imagesPerSecond: number): string {
  return imagesPerSecond >= 1
    ? `${imagesPerSecond.toFixed(1)} images/s`
    : `${(1 / imagesPerSecond).toFixed(1)} s/image`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
