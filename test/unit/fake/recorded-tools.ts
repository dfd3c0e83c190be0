// Stands in for ip/ethtool/tc/bridge in unit tests: answers each query
// netdev-snapshot makes with its recording in test/fixtures/replay/NAME.json
// (recorded in the guest by test/fixtures/replay/record-state.sh).
import { readFileSync } from 'node:fs';
import type { RunTool } from '../../../daemon/classes/net/netdev-snapshot.js';

interface Recorded {
  argv: string[];
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export function recorded(name: string): RunTool {
  const runs = JSON.parse(readFileSync(new URL(`../../fixtures/replay/${name}.json`, import.meta.url), 'utf8')) as Recorded[];
  return (file, args) => {
    const run = runs.find((r) => r.argv.join('\0') === [file, ...args].join('\0'));
    if (!run) throw new Error(`${name}: no recording of ${file} ${args.join(' ')}`);
    return Promise.resolve(run);
  };
}
