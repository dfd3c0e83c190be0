// The sending end of receive-filters.ts, run in the peer's network namespace
// (`ip netns exec NS node udp-send.js SRC PORT`): for each line `DEST COUNT` on
// stdin it sends COUNT UDP datagrams from SRC (which also picks the interface
// a multicast leaves by) to DEST:PORT, then prints `sent DEST COUNT`. One
// process serves a whole test: a Node start in the emulated guest costs
// seconds.
import { createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { createInterface } from 'node:readline';

const [src, portText] = process.argv.slice(2);
const port = Number(portText);
if (!src || !isIPv4(src) || !Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: udp-send.js SRC PORT, then lines "DEST COUNT" on stdin');
  process.exit(2);
}

const sock = createSocket('udp4');
await new Promise<void>((resolve) => sock.bind(0, src, resolve));
sock.setMulticastInterface(src);
sock.setMulticastTTL(1);
const payload = Buffer.from('shadowd receive-filter probe');

for await (const line of createInterface({ input: process.stdin })) {
  const [dest, countText] = line.trim().split(/\s+/);
  const count = Number(countText);
  if (!dest || !isIPv4(dest) || !Number.isInteger(count) || count < 1 || count > 10_000) {
    console.log(`error: expected "DEST COUNT", got ${JSON.stringify(line)}`);
    continue;
  }
  for (let i = 0; i < count; i++) {
    await new Promise<void>((resolve, reject) => sock.send(payload, port, dest, (err) => (err ? reject(err) : resolve())));
    // A gap per datagram keeps an emulated NIC's receive ring from overflowing.
    await new Promise((r) => setTimeout(r, 2));
  }
  console.log(`sent ${dest} ${count}`);
}
sock.close();
