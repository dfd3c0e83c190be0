// What the service needs only once its taps are starting: the store (and
// better-sqlite3), the recovery history and manager, the detectors, the
// helper connection, the control server and the metrics. shadowd-service.ts
// loads this with import() once bpftrace is spawned, so that Node reads and
// compiles them (about a second under emulation) while bpftrace compiles the
// taps, instead of before it starts them.
export { startControlServer } from '../control/control-server.js';
export { startDetectors } from '../core/detectors.js';
export { helperConnection } from '../core/helper-connection.js';
export { RecoveryHistory } from '../core/recovery-history.js';
export { RecoveryManager } from '../core/recovery-manager.js';
export { ShadowStore } from '../core/shadow-store.js';
export { Metrics, MetricsWriter, recordFinished, shadowEntriesByDevice } from './metrics.js';
