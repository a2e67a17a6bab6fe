// A small price chart drawn as SVG: the candles' closing prices as a line
// over a shaded area, the range's high and low, and the bot's fills as
// dots. Floats are fine here: a chart is a picture, never an amount.

import { svg, h } from './dom.js';

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 14, right: 64, bottom: 26, left: 10 };

/**
 * The chart of `candles` (`[{time, close, high, low}]`, oldest first) with
 * `marks` (`[{time, price, side}]`). `label` names the chart for screen
 * readers; a sentence under it says the same in words.
 */
export function priceChart({ candles, marks = [], label, testid = 'price-chart' }) {
  const points = candles
    .map((c) => ({ t: Date.parse(c.time), close: Number(c.close), high: Number(c.high), low: Number(c.low) }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.close));
  if (points.length < 2) return h('p', { class: 'empty', testid: `${testid}-empty` }, 'Not enough prices to draw a chart yet.');
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const lows = points.map((p) => (Number.isFinite(p.low) ? p.low : p.close));
  const highs = points.map((p) => (Number.isFinite(p.high) ? p.high : p.close));
  let min = Math.min(...lows);
  let max = Math.max(...highs);
  if (max === min) {
    max += 1;
    min -= 1;
  }
  const x = (t) => PAD.left + ((t - t0) / Math.max(1, t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - (v - min) / (max - min)) * (HEIGHT - PAD.top - PAD.bottom);
  const line = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.close).toFixed(1)}`).join(' ');
  const baseline = (HEIGHT - PAD.bottom).toFixed(1);
  const area = `${line} L${x(t1).toFixed(1)},${baseline} L${x(t0).toFixed(1)},${baseline} Z`;
  const first = points[0].close;
  const last = points[points.length - 1].close;
  const rising = last >= first;
  const titleId = `${testid}-title`;
  const descId = `${testid}-desc`;
  const summary = `${label}: from ${fmt(first)} to ${fmt(last)}, low ${fmt(min)}, high ${fmt(max)}, ${when(t0)} to ${when(t1)}.`;
  const dots = marks
    .map((m) => ({ t: Date.parse(m.time), price: Number(m.price), side: m.side }))
    .filter((m) => Number.isFinite(m.t) && Number.isFinite(m.price) && m.t >= t0 && m.t <= t1 + 3600e3);
  return h(
    'figure',
    { class: 'chart' },
    svg(
      'svg',
      {
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        role: 'img',
        'aria-labelledby': `${titleId} ${descId}`,
        class: ['price-chart', rising ? 'rising' : 'falling'],
        testid,
      },
      svg('title', { id: titleId }, label),
      svg('desc', { id: descId }, summary),
      svg('line', { class: 'grid-line', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(max), y2: y(max) }),
      svg('line', { class: 'grid-line', x1: PAD.left, x2: WIDTH - PAD.right, y1: y(min), y2: y(min) }),
      svg('path', { class: 'area', d: area }),
      svg('path', { class: 'line', d: line, testid: `${testid}-line` }),
      dots.map((m) =>
        svg('circle', { class: ['mark', m.side === 'sell' ? 'sell' : 'buy'], cx: x(Math.min(m.t, t1)).toFixed(1), cy: y(m.price).toFixed(1), r: 4 }),
      ),
      svg('text', { class: 'axis', x: WIDTH - PAD.right + 6, y: y(max) + 4 }, fmt(max)),
      svg('text', { class: 'axis', x: WIDTH - PAD.right + 6, y: y(min) + 4 }, fmt(min)),
      svg('text', { class: 'axis', x: PAD.left, y: HEIGHT - 6 }, when(t0)),
      svg('text', { class: 'axis', x: WIDTH - PAD.right, y: HEIGHT - 6, 'text-anchor': 'end' }, when(t1)),
    ),
    h('figcaption', { class: 'small' }, summary),
  );
}

function fmt(value) {
  return value.toLocaleString(undefined, { maximumFractionDigits: value < 10 ? 4 : 2 });
}

function when(t) {
  return new Date(t).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
