import { describe, expect, it } from 'vitest';
import { RunControl } from './trainingRunControl.ts';

describe('RunControl', () => {
  it('pauses between steps and continues with a fresh signal', async () => {
    const control = new RunControl();
    const first = control.signal;
    control.pause();
    expect(first.aborted).toBe(true);
    expect(control.current()).toBe('pausing');
    const waiting = control.waitWhilePaused();
    expect(control.current()).toBe('paused');
    control.continue();
    await expect(waiting).resolves.toBe('running');
    expect(control.current()).toBe('running');
    expect(control.signal.aborted).toBe(false);
  });

  it('a continue before the pause took effect leaves it running', () => {
    const control = new RunControl();
    control.pause();
    control.continue();
    expect(control.current()).toBe('running');
    expect(control.signal.aborted).toBe(false);
  });

  it('stops while running or paused', async () => {
    const running = new RunControl();
    running.stop();
    expect(running.signal.aborted).toBe(true);
    expect(running.current()).toBe('stopping');
    running.continue();
    expect(running.current()).toBe('stopping');

    const paused = new RunControl();
    paused.pause();
    const waiting = paused.waitWhilePaused();
    paused.stop();
    await expect(waiting).resolves.toBe('stopping');
  });
});
