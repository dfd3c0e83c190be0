// The guest kernels a test runs its cases on. SHADOWD_GUEST_KERNEL names one
// series: every case runs on it alone. Unset (as in CI), every case runs on
// the default series (6.1) and the cases a test picks run on the other LTS
// series (6.12) as well, so that CI holds both kernels within its time.
import { DEFAULT_KERNEL_SERIES, KERNEL_SERIES, KERNEL_SERIES_ENV, selectedKernelSeries, type KernelSeries } from './cache-paths.js';

/** Each case prefixed with the kernel series it runs on. */
export function kernelRows<T extends unknown[]>(cases: T[], alsoOnOthers: (c: T) => boolean, env: NodeJS.ProcessEnv = process.env): [KernelSeries, ...T][] {
  if (env[KERNEL_SERIES_ENV]?.trim()) {
    const only = selectedKernelSeries(env);
    return cases.map((c): [KernelSeries, ...T] => [only, ...c]);
  }
  const others = KERNEL_SERIES.filter((k) => k !== DEFAULT_KERNEL_SERIES);
  return [
    ...cases.map((c): [KernelSeries, ...T] => [DEFAULT_KERNEL_SERIES, ...c]),
    ...others.flatMap((k) => cases.filter(alsoOnOthers).map((c): [KernelSeries, ...T] => [k, ...c])),
  ];
}
