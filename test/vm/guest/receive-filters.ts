// What a NIC's receive filters let in, seen from a peer NIC on the same
// Ethernet segment (the rig's nicHub) that sits in a network namespace of its
// own: a restarted driver starts with empty filters, and only what the stack
// hands it again (its multicast list, promiscuous mode) lets traffic back in.
// A probe sends the NIC under test datagrams to a multicast group it joined,
// to one it did not, and to a unicast address that is not its own, and counts
// what its driver handed the stack (a packet capture that does not make the
// NIC promiscuous: drivers such as e1000 update their packet counters only
// every two seconds); and the peer resolves the NIC's IPv6 address by
// neighbour discovery, which needs the NIC's solicited-node multicast group.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { repoPath } from '../rig/repo-path.js';

export const PEER_NS = 'shpeer';
const DEV_V4 = '192.168.77.1';
const PEER_V4 = '192.168.77.2';
const DEV_V6 = 'fd77::1';
const PEER_V6 = 'fd77::2';
const FOREIGN_V4 = '192.168.77.55';
const FOREIGN_MAC = '02:00:00:00:00:55';
const JOINED = '239.7.7.7';
const UNJOINED = '239.8.8.8';
const PORT = 5007;
/** Datagrams per kind in one probe. */
export const PROBE_COUNT = 60;
const SENDER = repoPath('dist/test/vm/guest/udp-send.js');

/** One probe's counts: datagrams the NIC's driver received of PROBE_COUNT sent per kind. */
export interface FilterProbe {
  promisc: boolean;
  /** To a group the NIC joined: received by the listening socket. */
  joined: number;
  /** To a group nobody joined: datagrams the driver handed the stack (captured). */
  unjoined: number;
  /** To another station's MAC: datagrams the driver handed the stack. */
  foreign: number;
  /** The peer's ping of the NIC's IPv6 address, after forgetting its link address. */
  ndPing: string;
  ndOk: boolean;
  /** Every destination the capture has seen so far, with its count (for the test's messages). */
  seen: Record<string, number>;
}

const ip = (...args: string[]) => execa('ip', args);
const peerIp = (...args: string[]) => execa('ip', ['-n', PEER_NS, ...args]);

/** Both ends of a probe: DEV's listening socket and capture, and the peer's sender. */
export interface Segment {
  listener: Listener;
  sender: Sender;
  capture: Capture | null;
}

/**
 * tcpdump -p on DEV (it leaves promiscuous mode as it is), counting the
 * probe's datagrams by destination as the driver hands them to the stack.
 */
export class Capture {
  private readonly child: ResultPromise;
  readonly seen = new Map<string, number>();

  private constructor(dev: string) {
    this.child = execa('tcpdump', ['-p', '-i', dev, '-n', '-l', 'udp', 'port', String(PORT)], { stdout: 'pipe', stderr: 'ignore', buffer: false, reject: false });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const dest = new RegExp(` > (\\S+)\\.${PORT}: UDP`).exec(line)?.[1];
      if (dest) this.seen.set(dest, (this.seen.get(dest) ?? 0) + 1);
    });
  }

  /** Starts capturing; resolves once tcpdump listens. */
  static async start(dev: string): Promise<Capture> {
    const c = new Capture(dev);
    // tcpdump says "listening on" on stderr, which is not kept: a second is plenty under emulation.
    await new Promise((r) => setTimeout(r, 1500));
    return c;
  }

  count(dest: string): number {
    return this.seen.get(dest) ?? 0;
  }

  /** Waits until the count for DEST stops changing (300 ms), at most 3 s. */
  async settle(dest: string): Promise<number> {
    let last = -1;
    for (let waited = 0; waited < 3000; waited += 300) {
      const now = this.count(dest);
      if (now === last) return now;
      last = now;
      await new Promise((r) => setTimeout(r, 300));
    }
    return this.count(dest);
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.child;
  }
}

/**
 * Moves PEER into its own namespace on the segment of DEV, gives both an
 * IPv4 and an IPv6 address there, joins DEV to a multicast group with a
 * listening socket and starts the peer's sender (udp-send.ts).
 */
export async function setupPeer(dev: string, peer: string): Promise<Segment> {
  await ip('netns', 'add', PEER_NS);
  await ip('link', 'set', peer, 'netns', PEER_NS);
  await peerIp('link', 'set', peer, 'up');
  await peerIp('addr', 'add', `${PEER_V4}/24`, 'dev', peer);
  await peerIp('-6', 'addr', 'add', `${PEER_V6}/64`, 'dev', peer, 'nodad');
  // Frames to FOREIGN_V4 go to a MAC no NIC of the segment has.
  await peerIp('neigh', 'add', FOREIGN_V4, 'lladdr', FOREIGN_MAC, 'dev', peer, 'nud', 'permanent');
  await ip('addr', 'add', `${DEV_V4}/24`, 'dev', dev);
  await ip('-6', 'addr', 'add', `${DEV_V6}/64`, 'dev', dev, 'nodad');
  return { listener: await Listener.open(), sender: new Sender(), capture: null };
}

/** The peer's sender: one process for the whole test, told what to send line by line. */
export class Sender {
  private readonly child: ResultPromise;
  private readonly lines: AsyncIterator<string>;

  constructor() {
    this.child = execa('ip', ['netns', 'exec', PEER_NS, process.execPath, SENDER, PEER_V4, String(PORT)], { stdin: 'pipe', stdout: 'pipe', buffer: false });
    this.lines = createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
  }

  /** Sends PROBE_COUNT datagrams to DEST and waits until they are out. */
  async send(dest: string): Promise<void> {
    this.child.stdin!.write(`${dest} ${PROBE_COUNT}\n`);
    const next = await this.lines.next();
    if (next.done || next.value !== `sent ${dest} ${PROBE_COUNT}`) throw new Error(`the peer's sender answered ${JSON.stringify(next.value)}`);
    // What is still on the wire or in the driver's ring arrives meanwhile.
    await new Promise((r) => setTimeout(r, 300));
  }

  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.child;
  }
}

/** A UDP socket on DEV's address that joined JOINED; counts what arrives. */
export class Listener {
  received = 0;
  private constructor(private readonly sock: Socket) {
    sock.on('message', () => this.received++);
  }

  static async open(): Promise<Listener> {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => sock.bind(PORT, resolve));
    sock.addMembership(JOINED, DEV_V4);
    return new Listener(sock);
  }

  close(): void {
    this.sock.close();
  }
}

/** Datagrams to DEST that DEV's driver handed the stack while the peer sent PROBE_COUNT of them. */
async function received(capture: Capture, sender: Sender, dest: string): Promise<number> {
  const before = capture.count(dest);
  await sender.send(dest);
  return (await capture.settle(dest)) - before;
}

export async function probe(dev: string, peer: string, segment: Segment): Promise<FilterProbe> {
  const { listener, sender } = segment;
  segment.capture ??= await Capture.start(dev);
  const promisc = (Number(readFileSync(`/sys/class/net/${dev}/flags`, 'utf8')) & 0x100) !== 0;
  const unjoined = await received(segment.capture, sender, UNJOINED);
  const foreign = await received(segment.capture, sender, FOREIGN_V4);
  const start = listener.received;
  await sender.send(JOINED);
  const joined = listener.received - start;
  await execa('ip', ['-n', PEER_NS, 'neigh', 'del', DEV_V6, 'dev', peer], { reject: false });
  const ping = await execa('ip', ['netns', 'exec', PEER_NS, 'busybox', 'ping', '-6', '-c', '2', '-W', '3', DEV_V6], { reject: false });
  const ndPing = ping.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? ping.stderr;
  return { promisc, joined, unjoined, foreign, ndPing, ndOk: ping.exitCode === 0, seen: Object.fromEntries(segment.capture.seen) };
}
