// The daemon's one connection to the kernel helper, opened when first needed:
// shadowd runs (passive mode) without the module loaded, and says what to do
// when a recovery needs it. A connection that broke is dropped and reopened
// on the next use (the module may have been reloaded meanwhile).
import { HELPER_DEVICE, HelperError, openHelper, type HelperClient, type HelperReply } from './helper-client.js';

export const HELPER_NOT_LOADED = 'the shadow_helper module is not loaded (modprobe shadow_helper)';

/** Errors of the command itself (the module refused its bytes); the connection stays good. */
const COMMAND_ERRORS = new Set(['EINVAL', 'EMSGSIZE']);

export interface HelperConnection {
  /** The open, version-checked connection; rejects with a HelperError that says what to do. */
  get(): Promise<HelperClient>;
  close(): Promise<void>;
}

export function helperConnection(open: (path: string) => Promise<HelperClient> = openHelper, path = HELPER_DEVICE): HelperConnection {
  let current: Promise<HelperClient> | null = null;

  const connect = async (): Promise<HelperClient> => {
    let client: HelperClient;
    try {
      client = await open(path);
    } catch (err) {
      const code = err instanceof HelperError ? err.code : undefined;
      if (code === 'ENOENT' || code === 'ENXIO' || code === 'ENODEV') throw new HelperError(HELPER_NOT_LOADED, { code, cause: err });
      throw err;
    }
    try {
      // A module of another protocol would misread recovery commands.
      await client.version();
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err;
    }
    const dropOnBreak = (err: unknown): never => {
      if (!(err instanceof HelperError && err.code !== undefined && COMMAND_ERRORS.has(err.code))) {
        current = null;
        void client.close().catch(() => undefined);
      }
      throw err;
    };
    return {
      path: client.path,
      request: (command: string): Promise<HelperReply> => client.request(command).catch(dropOnBreak),
      version: () => client.version().catch(dropOnBreak),
      close: () => client.close(),
    };
  };

  return {
    get(): Promise<HelperClient> {
      if (!current) {
        const opening = connect();
        current = opening;
        // A failed open is not kept: the next request tries again (after modprobe).
        opening.catch(() => {
          if (current === opening) current = null;
        });
      }
      return current;
    },
    async close(): Promise<void> {
      const was = current;
      current = null;
      if (was) await (await was.catch(() => null))?.close();
    },
  };
}
