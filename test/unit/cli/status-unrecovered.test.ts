// shadowctl status names the devices whose latest recovery did not bring
// them back, with why (cli/format.ts), from the status reply's unrecovered
// list (RecoveryHistory.unrecovered): a refused restart says what it would
// have lost.
import { describe, expect, it } from 'vitest';
import { formatStatus, localTime, visibleDeep } from '../../../cli/format.js';
import type { StatusResult } from '../../../daemon/control/control-protocol.js';
import { STATUS_NOW as NOW, statusResult } from '../../fixtures/status-result.js';

const status = (unrecovered?: StatusResult['unrecovered']): StatusResult =>
  statusResult({
    devices: [{ id: 'bus:0000:00:04.0', cls: 'net', name: 'eth0', driver: 'virtio_net', bus: '0000:00:04.0', mode: 'passive', health: 'ok', keys: 12, holders: 0, attrs: { ifindex: 2 } }],
    ...(unrecovered ? { unrecovered } : {}),
  });

describe('shadowctl status: devices a recovery did not bring back', () => {
  it('says nothing when every latest recovery succeeded, or the daemon does not report it', () => {
    expect(formatStatus(status([]), NOW)).not.toMatch(/did not bring/);
    expect(formatStatus(status(), NOW)).not.toMatch(/did not bring/);
  });

  it('gives each one with its result, time, recovery id and reason', () => {
    const refusal = 'refused before touching the device: shadow_helper: a restart would lose what the driver holds: an XDP program in driver mode';
    const text = formatStatus(
      status([
        { cls: 'net', device: 'eth0', id: 'r-1a2b', result: 'failed', at: NOW - 5000, error: refusal },
        { cls: 'block', device: 'sdb', id: 'r-3c4d', result: 'gave-up', at: NOW - 1000, error: null },
      ]),
      NOW,
    );
    expect(text).toContain(
      `Latest recovery did not bring the device back:\n  net:eth0: failed at ${localTime(NOW - 5000)} (recovery r-1a2b): ${refusal}\n  block:sdb: gave-up at ${localTime(NOW - 1000)} (recovery r-3c4d): no reason recorded`,
    );
  });

  it('shows a hostile device name or reason as text, not as terminal controls', () => {
    const text = formatStatus(visibleDeep(status([{ cls: 'net', device: 'e\u001b]0;x\u0007', id: 'r1', result: 'failed', at: NOW, error: 'bad\u202etxt' }])), NOW);
    expect(text).toContain('net:e\\x1b]0;x\\x07: failed');
    expect(text).toContain('bad\\u202etxt');
  });
});
