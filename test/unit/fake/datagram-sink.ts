// A unix datagram socket that records what it receives, standing in for
// systemd's notify socket or journald's native socket. Node cannot open one,
// so socat does (`-x` dumps each datagram in hex with its length, which keeps
// the datagram boundaries that sd_notify's unterminated messages need).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DatagramSink {
  /** Datagrams received so far, complete ones only. */
  datagrams(): Buffer[];
  /** Waits until at least n datagrams arrived (or throws after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<Buffer[]>;
  close(): void;
}

/** Parses socat -x's dump: a "> date length=N ..." header, then hex bytes. */
export function parseSocatDump(text: string): Buffer[] {
  const out: Buffer[] = [];
  let want = -1;
  let bytes: number[] = [];
  const flush = () => {
    if (want >= 0 && bytes.length === want) out.push(Buffer.from(bytes));
  };
  for (const line of text.split('\n')) {
    const header = /^[<>] .*length=(\d+)/.exec(line);
    if (header) {
      flush();
      want = Number(header[1]);
      bytes = [];
    } else if (want >= 0 && /^\s*[0-9a-f]{2}( [0-9a-f]{2})*\s*$/.test(line)) {
      bytes.push(...line.trim().split(' ').map((h) => parseInt(h, 16)));
    }
  }
  flush();
  return out;
}

/** Starts socat on path (which must not exist) and waits for the socket. */
export async function startDatagramSink(path: string): Promise<DatagramSink> {
  const child: ChildProcess = spawn('socat', ['-u', '-x', `UNIX-RECV:${path}`, '/dev/null'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let dump = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (dump += d));
  for (let i = 0; !existsSync(path); i++) {
    if (i > 100 || child.exitCode !== null) throw new Error(`socat did not create ${path}: ${dump}`);
    await sleep(20);
  }
  const sink: DatagramSink = {
    datagrams: () => parseSocatDump(dump),
    async waitFor(n, timeoutMs = 3000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const got = sink.datagrams();
        if (got.length >= n) return got;
        if (Date.now() > end) throw new Error(`got ${got.length} of ${n} datagrams: ${dump}`);
        await sleep(20);
      }
    },
    close: () => void child.kill(),
  };
  return sink;
}
