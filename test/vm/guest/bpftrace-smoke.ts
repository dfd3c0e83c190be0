// Run in the guest: the daemon's bpftrace runner and event reader on a real
// kprobe. Attaches bpf/netdev-smoke.bt, changes DEV's flags twice with `ip`,
// and prints what the reader made of it as one JSON object.
// usage: node dist/test/vm/guest/bpftrace-smoke.js PROGRAM DEV
import { execa } from 'execa';
import { startBpftrace } from '../../../daemon/core/bpftrace-process.js';
import type { BpftraceMessage } from '../../../daemon/core/bpftrace-output.js';

const [program, dev] = process.argv.slice(2);
if (!program || !dev) throw new Error('usage: bpftrace-smoke.js PROGRAM DEV');

const messages: BpftraceMessage[] = [];
let wake = (): void => undefined;
const run = startBpftrace({
  program,
  onMessage: (m) => {
    messages.push(m);
    wake();
  },
});
const probes = await run.attached;
await execa('ip', ['link', 'set', dev, 'up']);
await execa('ip', ['link', 'set', dev, 'promisc', 'on']);
const ours = (): number => messages.filter((m) => m.kind === 'event' && m.event.strs['name'] === dev).length;
const deadline = Date.now() + 10_000;
while (ours() < 2 && Date.now() < deadline) {
  await new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, 200);
  });
}
run.stop();
const exit = await run.exited;
const { stdout: link } = await execa('ip', ['-json', 'link', 'show', dev]);
console.log(
  JSON.stringify(
    { probes, messages, exit, link: JSON.parse(link) as unknown },
    (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v),
  ),
);
