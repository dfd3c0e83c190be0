// The error a request to the daemon ends with, whoever asked (the control
// socket, a test): a code a client can act on and a message a person can
// read. Thrown by the core (the recovery manager refusing a request) and
// by the classes (a device the shadow does not hold); the control socket
// turns it into its error reply.

/**
 * EBUSY: the device is being recovered, or the control socket has as many
 * connections as it takes (try again); EHELPER: the kernel helper is missing
 * or refused; EUNAVAIL: this daemon cannot do that (a part is not built in).
 */
export type ErrorCode = 'EBADREQ' | 'ETOOBIG' | 'ENOMETHOD' | 'ENODEV' | 'EPERM' | 'EBUSY' | 'EHELPER' | 'EUNAVAIL' | 'EINTERNAL';

export class RequestError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly id: number | null = null,
  ) {
    super(message);
  }
}
