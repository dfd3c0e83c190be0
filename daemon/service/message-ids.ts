// journald MESSAGE_ID values for the recovery events an administrator or a
// monitoring rule looks for (`journalctl MESSAGE_ID=...`). Each is fixed
// forever once released: changing one breaks every saved query that uses it.

/** A detector reported a device's driver as failed. */
export const MESSAGE_FAILURE_DETECTED = '8abbbd6bcf5f49a9a9822d7dbd60a1eb';
/** A recovery began restarting the driver (the shadow answers for it meanwhile). */
export const MESSAGE_RECOVERY_STARTED = 'f4212d0432ba43a58ffc508142702072';
/** The driver was restarted and the configuration replayed: the device is passive again. */
export const MESSAGE_RECOVERED = 'ed8a2a0f0f264ebe8a8db88d1387995f';
/** A recovery attempt failed (the manager may try again after its back-off). */
export const MESSAGE_RECOVERY_FAILED = '847288329a554ecfb7650d8d05d1d595';
/** Recovery gave up on a device (rate limit reached): it is parked until `shadowctl recover`. */
export const MESSAGE_GAVE_UP = 'f3151d82a25949c8a25bcac18cf0201f';
/** One step of the configuration replay failed. */
export const MESSAGE_REPLAY_STEP_FAILED = 'e82f65c66b70499faa5b6ee5f6718e82';
