// The "remote window" application of the paper, in the guest: a long-lived
// interactive TCP session that sends a line every INTERVAL ms and expects it
// echoed. Runs until told to stop (SIGTERM) or until no echo came for
// --give-up ms, then prints one JSON line: lines sent and answered, the
// longest wait for an answer and how long it had been silent at the end.
//   node remote-window.js --host 10.0.2.100 --port 7 [--interval 200] [--give-up 20000]
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    interval: { type: 'string', default: '200' },
    'give-up': { type: 'string', default: '20000' },
  },
});
const port = Number(values.port);
const interval = Number(values.interval);
const giveUp = Number(values['give-up']);
if (!values.host || !Number.isInteger(port) || !(interval > 0) || !(giveUp > 0)) {
  console.error('usage: remote-window.js --host HOST --port PORT [--interval MS] [--give-up MS]');
  process.exit(2);
}

const sentAt = new Map<number, number>();
let sent = 0;
let answered = 0;
let maxWaitMs = 0;
let lastAnswerAt = Date.now();
let buffered = '';
let error: string | null = null;
let finished = false;

const socket = connect({ host: values.host, port });
socket.setNoDelay(true);

function finish(why: string): void {
  if (finished) return;
  finished = true;
  clearInterval(ticker);
  // At the end: how long since the last echo, and how many lines got none.
  const silentMs = Date.now() - lastAnswerAt;
  console.log(JSON.stringify({ why, sent, answered, unanswered: sentAt.size, maxWaitMs, silentMs, error }));
  socket.destroy();
  process.exit(0);
}

socket.on('data', (chunk: Buffer) => {
  buffered += chunk.toString();
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const n = Number(/^line (\d+)$/.exec(line)?.[1]);
    const at = sentAt.get(n);
    if (at === undefined) continue;
    sentAt.delete(n);
    answered++;
    lastAnswerAt = Date.now();
    maxWaitMs = Math.max(maxWaitMs, lastAnswerAt - at);
  }
});
socket.on('error', (err) => {
  error = err.message;
  finish('error');
});
socket.on('close', () => finish('closed'));

const ticker = setInterval(() => {
  // The oldest unanswered line tells how long the session has been silent.
  const oldest = Math.min(...sentAt.values());
  if (Number.isFinite(oldest)) maxWaitMs = Math.max(maxWaitMs, Date.now() - oldest);
  if (Date.now() - lastAnswerAt > giveUp) return finish('no answer');
  if (socket.connecting) return;
  sentAt.set(sent, Date.now());
  socket.write(`line ${sent}\n`);
  sent++;
}, interval);

process.on('SIGTERM', () => finish('stopped'));
