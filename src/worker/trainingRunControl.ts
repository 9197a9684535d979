type RunState = 'running' | 'pausing' | 'paused' | 'stopping';

/**
 * Pause, continue and stop of the training worker's run, between steps: pause and stop abort `signal` (the loop checks
 * it before each step); the worker then waits in waitWhilePaused until continue (a fresh signal) or stop.
 * running → pausing → paused → running, or → stopping from any state.
 */
export class RunControl {
  private abort = new AbortController();
  private wake: ((next: 'running' | 'stopping') => void) | undefined;
  private state: RunState = 'running';

  current(): RunState {
    return this.state;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  pause(): void {
    if (this.state !== 'running') return;
    this.state = 'pausing';
    this.abort.abort();
  }

  continue(): void {
    if (this.state !== 'pausing' && this.state !== 'paused') return;
    this.abort = new AbortController();
    this.state = 'running';
    this.wake?.('running');
  }

  stop(): void {
    this.state = 'stopping';
    this.abort.abort();
    this.wake?.('stopping');
  }

  /** Resolves on continue or stop, with what comes next. */
  waitWhilePaused(): Promise<'running' | 'stopping'> {
    this.state = 'paused';
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}
