// The CLI's side of the control socket: one request, one reply, with the
// failures an administrator can act on spelled out.
import { connect } from 'node:net';
import type { Reply } from './control-protocol.js';

export const DEFAULT_SOCKET = '/run/shadowd/control.sock';

export class ControlError extends Error {
  constructor(
    /** 'unreachable': no daemon; 'denied': no permission; 'protocol': a reply we cannot read; 'timeout'. */
    readonly kind: 'unreachable' | 'denied' | 'protocol' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

export function request<T>(socketPath: string, method: string, params?: Record<string, unknown>, timeoutMs = 10_000): Promise<Reply<T>> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlError('timeout', `shadowd did not answer within ${timeoutMs / 1000} s (socket ${socketPath})`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ id: 1, method, ...(params ? { params } : {}) }) + '\n'));
    socket.on('data', (chunk: string) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(data.slice(0, nl)) as Reply<T>);
      } catch {
        reject(new ControlError('protocol', `shadowd sent a reply that is not JSON: ${data.slice(0, 200)}`));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new ControlError('unreachable', `shadowd is not running (nothing listens on ${socketPath})`));
      } else if (err.code === 'EACCES' || err.code === 'EPERM') {
        reject(new ControlError('denied', `permission denied on ${socketPath}: run as root or as a member of the shadowd group`));
      } else {
        reject(new ControlError('unreachable', `cannot reach shadowd at ${socketPath}: ${err.message}`));
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!data.includes('\n')) reject(new ControlError('protocol', 'shadowd closed the connection without answering'));
    });
  });
}
