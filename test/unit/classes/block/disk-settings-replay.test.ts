// The disk settings replay plan: what differs, in the order the kernel needs
// it, without what a restart must not get back (the teardown's cache type)
// and without what someone changed during the recovery.
import { describe, expect, it } from 'vitest';
import { planRestartSettings, planSettings, type SettingEntry } from '../../../../daemon/classes/block/disk-settings-replay.js';

const e = (key: string, value: string, seq = 1): SettingEntry => ({ key, value, seq });

describe('disk settings replay', () => {
  const shadow = [
    e('queue/iosched/fifo_batch', '8'),
    e('queue/read_ahead_kb', '1024'),
    e('queue/scheduler', 'mq-deadline'),
    e('device/timeout', '45'),
    e('queue/nr_requests', '64'),
    e('scsi_disk/cache_type', 'write back'),
  ];

  it('sets the scheduler first, then its tunables and nr_requests (a switch resets them), then the rest; leaves the cache type', () => {
    const now = { 'queue/scheduler': 'none', 'queue/read_ahead_kb': '128', 'device/timeout': '30', 'queue/nr_requests': '64', 'scsi_disk/cache_type': 'write through' };
    expect(planSettings(shadow, now)).toEqual([
      { key: 'queue/scheduler', value: 'mq-deadline' },
      { key: 'queue/iosched/fifo_batch', value: '8' },
      { key: 'queue/nr_requests', value: '64' },
      { key: 'device/timeout', value: '45' },
      { key: 'queue/read_ahead_kb', value: '1024' },
    ]);
  });

  it('leaves values the disk already has when the scheduler stays', () => {
    const now = { 'queue/scheduler': 'mq-deadline', 'queue/iosched/fifo_batch': '8', 'queue/read_ahead_kb': '1024', 'device/timeout': '45', 'queue/nr_requests': '64' };
    expect(planSettings(shadow, now)).toEqual([]);
  });

  it('skips attributes the disk does not have (a virtio disk has no SCSI device)', () => {
    expect(planSettings(shadow, { 'queue/scheduler': 'mq-deadline', 'queue/iosched/fifo_batch': '16', 'queue/read_ahead_kb': '1024', 'queue/nr_requests': '64' })).toEqual([
      { key: 'queue/iosched/fifo_batch', value: '8' },
    ]);
  });

  it('after a restart, leaves what changed in the shadow since the mark as the disk has it', () => {
    const entries = [e('queue/scheduler', 'mq-deadline', 3), e('queue/read_ahead_kb', '1024', 9)];
    expect(planRestartSettings(entries, { 'queue/scheduler': 'none', 'queue/read_ahead_kb': '128' }, 5)).toEqual({
      steps: [{ key: 'queue/scheduler', value: 'mq-deadline' }],
      left: ['queue/read_ahead_kb'],
    });
  });
});
