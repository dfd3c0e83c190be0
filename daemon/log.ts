// Structured log lines. Each line has a syslog priority and fields (device,
// driver, recovery id ...). On stderr each line carries the `<N>` priority
// prefix that journald and systemd read from a service's stderr; the fields
// follow the message as KEY=value so a foreground run stays readable.

export const PRIORITY = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;
export type Priority = keyof typeof PRIORITY;

/** Field names as journald wants them: upper case, digits, underscores. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(priority: Priority, message: string, fields?: LogFields): void;
}

function fieldText(fields: LogFields): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    const text = String(v);
    parts.push(`${k}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`);
  }
  return parts.join(' ');
}

export function formatLogLine(priority: Priority, message: string, fields: LogFields = {}): string {
  const extra = fieldText(fields);
  return `<${PRIORITY[priority]}>${message.replace(/\n/g, ' ')}${extra ? ` ${extra}` : ''}`;
}

export function stderrLogger(minimum: Priority = 'info', write = (line: string) => process.stderr.write(line + '\n')): Logger {
  return {
    log(priority, message, fields) {
      if (PRIORITY[priority] <= PRIORITY[minimum]) write(formatLogLine(priority, message, fields));
    },
  };
}
