// A time format as Envoy's access log formats a time with a format of its
// own (%START_TIME(...)%, %DOWNSTREAM_PEER_CERT_V_START(...)%, ...): Envoy's
// DateFormatter (source/common/common/utility.cc) in UTC. Envoy replaces its
// own specifiers first, then hands the rest to absl::FormatTime:
//
// - Envoy's: %s (whole seconds since the epoch), %f and %1f..%9f (the
//   fraction of the second, truncated to that many digits; %f is 9);
// - absl's extensions: %Ez (+00:00), %E*z (+00:00:00), %E#S (seconds with #
//   fractional digits), %E*S (seconds with the fraction's significant digits,
//   no '.' when there are none), %E#f, %E*f, %E4Y;
// - the rest is strftime's in the C locale ("C" names, %c as
//   "%a %b %e %H:%M:%S %Y"), UTC: %z is +0000, %Z is UTC.
//
// The sidecar's times are milliseconds (Date.now()), so digits past the
// third are 0; Envoy's are nanoseconds. A specifier strftime does not know
// (or a locale's alternative, %Ec, %Od, ...) is refused when the format is
// compiled, where Envoy would print whatever the C library does with it.

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** The broken-down UTC time one format reads. */
interface Tm {
  ms: number;
  year: number;
  /** 0-11 */
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millis: number;
  /** 0 (Sunday) - 6 */
  wday: number;
  /** 0-365 */
  yday: number;
}

function tmOf(ms: number): Tm {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  const yday = Math.floor((Date.UTC(year, d.getUTCMonth(), d.getUTCDate()) - Date.UTC(year, 0, 1)) / 86_400_000);
  return {
    ms,
    year,
    month: d.getUTCMonth(),
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
    millis: ((ms % 1000) + 1000) % 1000,
    wday: d.getUTCDay(),
    yday,
  };
}

const pad = (n: number, width: number, fill = '0'): string => {
  const neg = n < 0;
  const s = String(Math.abs(n)).padStart(width, fill);
  return neg ? `-${s}` : s;
};

/** The fraction of the second as nanoseconds' digits (the sidecar's are whole milliseconds). */
const nanos = (t: Tm): string => `${pad(t.millis, 3)}000000`;

/** ISO 8601 week-based year and week (strftime's %G and %V). */
function isoWeek(t: Tm): { year: number; week: number } {
  // The week's Thursday decides its year.
  const isoDay = (t.wday + 6) % 7; // Monday 0
  const thursday = Date.UTC(t.year, t.month, t.day) + (3 - isoDay) * 86_400_000;
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return { year, week };
}

type Spec = (t: Tm) => string;

const hour12 = (t: Tm): number => (t.hour % 12 === 0 ? 12 : t.hour % 12);

/** strftime's conversions in the C locale, UTC, and Envoy's and cctz's %s. */
const STRFTIME: Record<string, Spec> = {
  a: (t) => DAYS[t.wday]!.slice(0, 3),
  A: (t) => DAYS[t.wday]!,
  b: (t) => MONTHS[t.month]!.slice(0, 3),
  h: (t) => MONTHS[t.month]!.slice(0, 3),
  B: (t) => MONTHS[t.month]!,
  c: (t) => `${DAYS[t.wday]!.slice(0, 3)} ${MONTHS[t.month]!.slice(0, 3)} ${pad(t.day, 2, ' ')} ${pad(t.hour, 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)} ${t.year}`,
  C: (t) => pad(Math.floor(t.year / 100), 2),
  d: (t) => pad(t.day, 2),
  D: (t) => `${pad(t.month + 1, 2)}/${pad(t.day, 2)}/${pad(t.year % 100, 2)}`,
  e: (t) => pad(t.day, 2, ' '),
  F: (t) => `${t.year}-${pad(t.month + 1, 2)}-${pad(t.day, 2)}`,
  g: (t) => pad(isoWeek(t).year % 100, 2),
  G: (t) => String(isoWeek(t).year),
  H: (t) => pad(t.hour, 2),
  I: (t) => pad(hour12(t), 2),
  j: (t) => pad(t.yday + 1, 3),
  k: (t) => pad(t.hour, 2, ' '),
  l: (t) => pad(hour12(t), 2, ' '),
  m: (t) => pad(t.month + 1, 2),
  M: (t) => pad(t.minute, 2),
  n: () => '\n',
  p: (t) => (t.hour < 12 ? 'AM' : 'PM'),
  P: (t) => (t.hour < 12 ? 'am' : 'pm'),
  r: (t) => `${pad(hour12(t), 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)} ${t.hour < 12 ? 'AM' : 'PM'}`,
  R: (t) => `${pad(t.hour, 2)}:${pad(t.minute, 2)}`,
  s: (t) => String(Math.floor(t.ms / 1000)),
  S: (t) => pad(t.second, 2),
  t: () => '\t',
  T: (t) => `${pad(t.hour, 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)}`,
  u: (t) => String(t.wday === 0 ? 7 : t.wday),
  U: (t) => pad(Math.floor((t.yday + 7 - t.wday) / 7), 2),
  V: (t) => pad(isoWeek(t).week, 2),
  w: (t) => String(t.wday),
  W: (t) => pad(Math.floor((t.yday + 7 - ((t.wday + 6) % 7)) / 7), 2),
  x: (t) => `${pad(t.month + 1, 2)}/${pad(t.day, 2)}/${pad(t.year % 100, 2)}`,
  X: (t) => `${pad(t.hour, 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)}`,
  y: (t) => pad(((t.year % 100) + 100) % 100, 2),
  Y: (t) => String(t.year),
  z: () => '+0000',
  Z: () => 'UTC',
  '%': () => '%',
};

/** A compiled time format: the text for a time in ms since the epoch. */
export type TimeFormat = (ms: number) => string;

/**
 * `format` compiled, or a message naming what the sidecar cannot format.
 * The parts that do not depend on the time stay text; the rest are read from
 * one broken-down time per call.
 */
export function compileTimeFormat(format: string): TimeFormat | string {
  const parts: (string | Spec)[] = [];
  let literal = '';
  let i = 0;
  const spec = (s: Spec): void => {
    if (literal) parts.push(literal);
    literal = '';
    parts.push(s);
  };
  while (i < format.length) {
    const c = format[i]!;
    if (c !== '%') {
      literal += c;
      i++;
      continue;
    }
    const next = format[i + 1];
    if (next === undefined) return `${JSON.stringify(format)}: a lone '%' at its end (a literal % is %%)`;
    // Envoy's own: %f (9 digits) and %1f..%9f, the fraction truncated.
    if (next === 'f') {
      spec(nanos);
      i += 2;
      continue;
    }
    if (next >= '1' && next <= '9' && format[i + 2] === 'f') {
      const n = Number(next);
      spec((t) => nanos(t).slice(0, n));
      i += 3;
      continue;
    }
    if (next === 'E') {
      // absl::FormatTime's extensions.
      const rest = format.slice(i + 2);
      let m: RegExpMatchArray | null;
      if (rest.startsWith('z')) {
        spec(() => '+00:00');
        i += 3;
      } else if (rest.startsWith('*z')) {
        spec(() => '+00:00:00');
        i += 4;
      } else if (rest.startsWith('*S')) {
        spec((t) => {
          const frac = nanos(t).replace(/0+$/, '');
          return frac === '' ? pad(t.second, 2) : `${pad(t.second, 2)}.${frac}`;
        });
        i += 4;
      } else if (rest.startsWith('*f')) {
        spec((t) => nanos(t).replace(/0+$/, '') || '0');
        i += 4;
      } else if (rest.startsWith('4Y')) {
        spec((t) => pad(t.year, 4));
        i += 4;
      } else if ((m = /^(\d+)([Sf])/.exec(rest)) !== null) {
        const n = Number(m[1]);
        if (n > 15) return `${JSON.stringify(format)}: %E${m[1]}${m[2]} asks for more than 15 fractional digits`;
        const digits = (t: Tm): string => (nanos(t) + '000000').slice(0, n);
        spec(m[2] === 'S' ? (t) => (n === 0 ? pad(t.second, 2) : `${pad(t.second, 2)}.${digits(t)}`) : digits);
        i += 2 + m[0].length;
      } else {
        return `${JSON.stringify(format)}: %E${rest.slice(0, 1)} at position ${i} is not a time specifier the weft sidecar formats (absl's %Ez, %E*z, %E#S, %E*S, %E#f, %E*f, %E4Y are)`;
      }
      continue;
    }
    const s = STRFTIME[next];
    if (s === undefined) return `${JSON.stringify(format)}: %${next} at position ${i} is not a time specifier the weft sidecar formats (strftime's in the C locale, Envoy's %s and %f, absl's %E forms are)`;
    if (next === '%' || next === 'n' || next === 't') literal += s(tmOf(0));
    else spec(s);
    i += 2;
  }
  if (literal) parts.push(literal);
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const text = parts[0];
    return () => text;
  }
  return (ms) => {
    const t = tmOf(ms);
    let out = '';
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k]!;
      out += typeof p === 'string' ? p : p(t);
    }
    return out;
  };
}
