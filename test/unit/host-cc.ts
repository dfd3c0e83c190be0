// Whether the host has a C compiler: the unit tests that build C from the
// repository (kmod/'s reload decision, the precompiled taps' record printer)
// run only where one is.
import { execFileSync } from 'node:child_process';

export function hasCc(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
