// The Node options shadowd runs with (the systemd unit, the tests and the
// benchmarks use these). Measured with bench/ingest-rate.js on a burst of
// 300,000 recorded events, peak RSS with Node's defaults is about 95 MB; a
// small young generation, a capped old space and no optimizing compiler bring
// it to about 60 MB (the daemon's budget is 64 MB) while it still ingests
// about 150,000 events/s (its goal is 50,000). The live data is a few MB,
// far below the cap.
export const DAEMON_NODE_OPTIONS = ['--max-semi-space-size=1', '--max-old-space-size=32', '--no-opt'];
