// Formatting for people, and exact decimal arithmetic for the few sums the
// console makes itself (an open position's value at the last price): the
// API's amounts are exact decimals as strings, and stay exact here (BigInt
// with a scale, never a float).

/** `{units: BigInt, scale: n}` of a decimal string, or null. */
export function parseDecimal(text) {
  const match = /^(-?)([0-9]+)(?:\.([0-9]+))?$/.exec(String(text ?? '').trim());
  if (!match) return null;
  const fraction = match[3] || '';
  const units = BigInt(match[2] + fraction) * (match[1] ? -1n : 1n);
  return { units, scale: fraction.length };
}

function rescale(value, scale) {
  return value.units * 10n ** BigInt(scale - value.scale);
}

export function multiply(a, b) {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

export function subtract(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) - rescale(b, scale), scale };
}

/** The decimal rounded half away from zero to `places`, as a string. */
export function toFixed(value, places) {
  let units = value.units;
  if (value.scale > places) {
    const divisor = 10n ** BigInt(value.scale - places);
    const negative = units < 0n;
    const magnitude = negative ? -units : units;
    let rounded = magnitude / divisor;
    if ((magnitude % divisor) * 2n >= divisor) rounded += 1n;
    units = negative ? -rounded : rounded;
  } else {
    units *= 10n ** BigInt(places - value.scale);
  }
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(places + 1, '0');
  const whole = digits.slice(0, digits.length - places);
  const fraction = places > 0 ? `.${digits.slice(digits.length - places)}` : '';
  return `${negative && units !== 0n ? '-' : ''}${whole}${fraction}`;
}

/** A decimal string for display: as given, or a dash when absent. */
export function amount(text) {
  if (text === null || text === undefined || text === '') return '—';
  return String(text);
}

/** The sign of a decimal string: -1, 0 or 1. */
export function sign(text) {
  const value = parseDecimal(text);
  if (!value || value.units === 0n) return 0;
  return value.units < 0n ? -1 : 1;
}

/** A time for display, in the reader's locale and zone; a dash when absent. */
export function time(text) {
  if (!text) return '—';
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return String(text);
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

/** The value of a `datetime-local` control as RFC 3339 (UTC), or undefined. */
export function localToRfc3339(value) {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

/** The first characters of a long id or hash, for tables. */
export function short(text, length = 8) {
  const value = String(text ?? '');
  return value.length > length ? `${value.slice(0, length)}…` : value;
}

/** A state or kind name for people: `test_failed` → `test failed`. */
export function words(text) {
  return String(text ?? '').replaceAll('_', ' ');
}
