// The network class's declaration: its sync marker is a request the taps
// print and no real interface can match.
import { describe, expect, it } from 'vitest';
import { NET_DECLARATION, NET_SYNC_MARKER } from '../../../../daemon/classes/net/net-declaration.js';
import type { TapEvent } from '../../../../daemon/core/tap-record.js';

const event = (call: string, ifindex: number | undefined): TapEvent => ({
  call,
  nums: ifindex === undefined ? { netns: 4026531840, ret: -19 } : { ifindex },
  masks: {},
  strs: {},
  pid: 1,
  tsNs: 0n,
  comm: 'ethtool',
});

describe('the network class declaration', () => {
  it('runs its sync markers as a request for a device no interface can be named', () => {
    expect(NET_SYNC_MARKER.argv).toEqual(['ethtool', '-s', 'shadowd:sync', 'msglvl', '0']);
    // The kernel refuses ':' in interface names (dev_valid_name); ethtool takes any name under 16 bytes.
    const name = NET_SYNC_MARKER.argv[2]!;
    expect(name.includes(':') && name.length < 16).toBe(true);
    expect(NET_DECLARATION.names.valid(name)).toBe(false);
  });

  it('knows its marker by the request that resolved to no device', () => {
    // Netlink: the header named no device (6.1 and 6.12 alike); the ioctl, when ethtool has no netlink.
    expect(NET_SYNC_MARKER.isMarker(event('ethtool_nl_nodev', undefined))).toBe(true);
    expect(NET_SYNC_MARKER.isMarker(event('ethtool_ioctl', 0))).toBe(true);
    expect(NET_SYNC_MARKER.isMarker(event('ethtool_ioctl', 2))).toBe(false);
    // 6.1 also prints the set it went on to (6.12 never calls it): not the marker, which came first.
    expect(NET_SYNC_MARKER.isMarker(event('ethtool_nl_set', 0))).toBe(false);
    expect(NET_SYNC_MARKER.isMarker(event('ethtool_nl_set', 2))).toBe(false);
    expect(NET_SYNC_MARKER.isMarker(event('mtu', 0))).toBe(false);
  });

  it('names its devices as the kernel does', () => {
    for (const ok of ['eth0', 'a', 'x'.repeat(15), 'wlp0s20f3']) expect(NET_DECLARATION.names.valid(ok), ok).toBe(true);
    for (const bad of ['', 'x'.repeat(16), 'a/b', 'a:b', 'a b', '.', '..']) expect(NET_DECLARATION.names.valid(bad), bad).toBe(false);
  });
});
