// A detector's polling: one round at a time, the next one interval after
// the last one ended (a slow round under load is never overlapped), and a
// stop that waits for the round in flight. Shared by the classes' stall
// detectors.
export class PollLoop {
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly round: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.polling = this.round().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
  }
}
