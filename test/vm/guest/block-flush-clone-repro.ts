// Reproducer of the intermittent dd_exit_sched WARN of block recovery-apps
// (see fail-stop-flush-cycles.ts for the mechanism): loads the helper module
// given, runs many fail-stop cycles on the PIIX (or AHCI) disk under a
// dm-multipath map with ext4 and fsync-heavy writers, then deletes the disk
// (sd_remove frees its mq-deadline scheduler) and reports whether the kernel
// logged the WARN. Prints one "FLUSH_REPRO <json>" line.
//   node dist/test/vm/guest/block-flush-clone-repro.js --ko PATH [--cycles N] [--serial shadowd-diskN]
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { readDisk } from '../../../daemon/classes/block/block-sysfs.js';
import { readDiskIdentity } from '../../../daemon/classes/block/disk-identity.js';
import { openHelper } from '../../../daemon/core/helper-client.js';
import { failStopFlushCycles } from './fail-stop-flush-cycles.js';
import { loadHelperDeps } from './helper-deps.js';

const { values } = parseArgs({
  options: {
    ko: { type: 'string' },
    cycles: { type: 'string', default: '100' },
    serial: { type: 'string', default: 'shadowd-disk0' },
  },
});
if (!values.ko) throw new Error('--ko PATH is required');
for (const mod of ['ata_piix', 'ahci', 'sd_mod', 'dm-multipath']) await execa('modprobe', [mod]);
loadHelperDeps(values.ko);
await execa('insmod', [values.ko, 'allow_faults=1']);

async function findDisk(serial: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    for (const name of readdirSync('/sys/block').filter((n) => /^(sd|vd)[a-z]+$/.test(n))) {
      if ((await readDiskIdentity(name).catch(() => null))?.serial === serial) return name;
    }
    await sleep(100);
  }
  throw new Error(`no disk with serial ${serial}`);
}

const name = await findDisk(values.serial);
const disk = await readDisk(name);
const client = await openHelper();
const helper = async (command: string): Promise<string> => {
  const r = await client.request(command);
  return r.ok ? `ok ${r.payload}` : `err ${r.errno} ${r.message}`;
};
const run = process.env['SHADOWD_RUNDIR'] ?? '/tmp';
const rec = await failStopFlushCycles({ disk, cycles: Number(values.cycles), helper, workDir: run, log: (l) => console.error(l) });
writeFileSync(`/sys/block/${name}/device/delete`, '1');
for (let i = 0; i < 50 && existsSync(`/sys/block/${name}`); i++) await sleep(100);
await sleep(500);
const dmesg = (await execa('dmesg', [])).stdout.split('\n');
const warn = dmesg.filter((l) => /dd_exit_sched|statistics for priority/.test(l));
console.log(`FLUSH_REPRO ${JSON.stringify({ ko: values.ko, disk: name, ...rec, deleted: !existsSync(`/sys/block/${name}`), warn })}`);
await client.close();
process.exit(0);
