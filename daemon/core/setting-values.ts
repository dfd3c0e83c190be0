// Parsers for configuration values, shared by the daemon's own keys
// (service/config.ts) and the keys a device class declares
// (ClassDeclaration.settings): each returns the value, or an error that
// says what the value must be.
import type { SettingParse } from './device-class.js';

/** A decimal integer from min to max, no sign, no exponent. */
export function integerSetting(min: number, max: number): SettingParse<number> {
  return (raw) => {
    const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
    return Number.isInteger(n) && n >= min && n <= max ? { value: n } : { error: `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}` };
  };
}

// The spellings systemd accepts for a boolean.
const TRUE = new Set(['yes', 'true', 'on', '1']);
const FALSE = new Set(['no', 'false', 'off', '0']);

export const booleanSetting: SettingParse<boolean> = (raw) => {
  const v = raw.toLowerCase();
  if (TRUE.has(v)) return { value: true };
  if (FALSE.has(v)) return { value: false };
  return { error: `must be yes or no, got ${JSON.stringify(raw)}` };
};
