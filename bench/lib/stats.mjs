// Percentiles and number formatting shared by every section.

/** The q-quantile of an ascending array (nearest rank, as the original bench did). */
export const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** n, p50, p99, min, max of a list of numbers (any order). */
export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) return { n: 0, p50: Number.NaN, p99: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { n: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), min: sorted[0], max: sorted.at(-1) };
}

export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
export const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
export const pct = (x) => (Number.isFinite(x) ? `${x.toFixed(1)}%` : '–');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A markdown table from a header row and data rows; `align` holds 'l' or 'r' per column. */
export function table(header, rows, align = header.map((_, i) => (i === 0 ? 'l' : 'r'))) {
  const sep = align.map((a) => (a === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`);
}
