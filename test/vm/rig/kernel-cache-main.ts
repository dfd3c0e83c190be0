// `npm run kernel`: fill (or confirm) the guest kernel cache.
import { ensureKernelCache } from './kernel-cache.js';

try {
  await ensureKernelCache((line) => console.log(`kernel-cache: ${line}`));
} catch (err) {
  console.error(`kernel-cache: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
