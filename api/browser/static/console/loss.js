// Find loss: a bar chart of deletes, truncates and column updates per time bin, bursts marked;
// clicking a burst proposes T just before it for the restore plan.
import { expect, graphql } from './api.js';
import { byId, el, when } from './dom.js';
import { attempt } from './status.js';
import { fillTableSelect } from './tables.js';

const FIND = `query FindLoss($table: RestoreTable!, $since: DateTime, $until: DateTime,
    $bin: Float!) {
  findLoss(table: $table, since: $since, until: $until, binSeconds: $bin) { __typename
    ... on LossReport { table binSeconds unshippedChanges warnings
      buckets { start signal count setToNull }
      windows { signal start end count setToNull transactions proposedAsOf
                exampleKeys { column value } } }
    ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }`;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 900;
const HEIGHT = 240;
const MARGIN = { left: 48, right: 12, top: 12, bottom: 36 };
const MIN_SLOTS = 30;

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function kind(signal) {
  if (signal === 'delete' || signal === 'truncate') return signal;
  return 'update';
}

function propose(table, window) {
  document.dispatchEvent(new CustomEvent('propose-as-of', {
    detail: { table: table.toUpperCase(), asOf: window.proposedAsOf, signal: window.signal },
  }));
}

// Bars per bin (stacked by kind of signal), x = time from the first to the last bin.
function draw(report) {
  const binMs = report.binSeconds * 1000;
  const totals = new Map();
  for (const bucket of report.buckets) {
    const at = Date.parse(bucket.start);
    const bar = totals.get(at) || { delete: 0, truncate: 0, update: 0 };
    bar[kind(bucket.signal)] += bucket.count;
    totals.set(at, bar);
  }
  const times = [...totals.keys()].sort((a, b) => a - b);
  // At least MIN_SLOTS bins wide, the bars centred, so one burst reads as a burst over time.
  const used = Math.round((times[times.length - 1] + binMs - times[0]) / binMs);
  const pad = Math.max(0, Math.ceil((MIN_SLOTS - used) / 2));
  const first = times[0] - pad * binMs;
  const last = times[times.length - 1] + binMs + pad * binMs;
  const slots = used + 2 * pad;
  const highest = Math.max(...[...totals.values()].map((b) => b.delete + b.truncate + b.update));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const barWidth = Math.max(2, plotWidth / slots - 1);
  const x = (at) => MARGIN.left + ((at - first) / (last - first)) * plotWidth;
  const y = (count) => MARGIN.top + plotHeight - (count / highest) * plotHeight;
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img',
    'aria-label': `changes of ${report.table.toLowerCase()} per ${report.binSeconds} s` });
  chart.append(svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0),
    class: 'axis' }));
  chart.append(svg('text', { x: MARGIN.left - 6, y: y(highest) + 4, class: 'tick end' },
    String(highest)));
  chart.append(svg('text', { x: MARGIN.left - 6, y: y(0), class: 'tick end' }, '0'));
  chart.append(svg('text', { x: MARGIN.left, y: HEIGHT - 8, class: 'tick' },
    new Date(first).toLocaleString()));
  chart.append(svg('text', { x: WIDTH - MARGIN.right, y: HEIGHT - 8, class: 'tick end' },
    new Date(last).toLocaleString()));
  for (const at of times) {
    const bar = totals.get(at);
    const burst = report.windows.find((w) => Date.parse(w.start) < at + binMs
      && Date.parse(w.end) >= at);
    let base = 0;
    for (const part of ['delete', 'truncate', 'update']) {
      if (!bar[part]) continue;
      const rect = svg('rect', { x: x(at), y: y(base + bar[part]), width: barWidth,
        height: y(base) - y(base + bar[part]), class: `bar ${part}${burst ? ' burst' : ''}`,
        'data-start': new Date(at).toISOString(), 'data-count': bar[part] });
      rect.append(svg('title', {}, `${new Date(at).toLocaleString()}: ${bar[part]} ${part}s`
        + (burst ? ` (burst: click to restore as of just before it)` : '')));
      if (burst) rect.addEventListener('click', () => propose(report.table, burst));
      chart.append(rect);
      base += bar[part];
    }
  }
  const legend = el('p', { class: 'legend' },
    el('span', { class: 'key delete' }, 'deletes'), el('span', { class: 'key truncate' },
      'truncates'), el('span', { class: 'key update' }, 'column updates'),
    el('span', { class: 'key burst' }, 'burst (click it)'));
  return [chart, legend];
}

function windowItem(table, w) {
  const nulls = w.setToNull ? ` (${w.setToNull} set to NULL)` : '';
  const keys = w.exampleKeys.map((key) => key.map((k) => `${k.column}=${k.value}`).join(','))
    .join(' ');
  return el('li', {},
    el('strong', {}, `${w.count} rows: ${w.signal}`), nulls,
    ` between ${when(w.start)} and ${when(w.end)} in ${w.transactions} transaction(s)`,
    keys ? el('span', { class: 'keys' }, ` e.g. ${keys}`) : null, ' ',
    el('button', { type: 'button', class: 'propose', onclick: () => propose(table, w) },
      `Plan a restore as of ${w.proposedAsOf}`));
}

async function show(button) {
  await attempt(button, async () => {
    const since = byId('loss-since').value.trim() || null;
    const until = byId('loss-until').value.trim() || null;
    const { findLoss } = await graphql(FIND, {
      table: byId('loss-table').value, since, until, bin: Number(byId('loss-bin').value),
    });
    const report = expect(findLoss, 'LossReport');
    const chart = byId('loss-chart');
    const windows = byId('loss-windows');
    byId('loss-source').replaceChildren(...[
      el('p', {}, `Read the shipped segments and the live change log (${report.unshippedChanges} `
        + 'changes not shipped by a backup yet).'),
      ...report.warnings.map((w) => el('p', { class: 'warning' }, `Warning: ${w}.`)),
    ]);
    if (!report.buckets.length) {
      chart.replaceChildren(el('p', {}, 'No deletes, truncates or updates of this table in this '
        + 'window.'));
      windows.replaceChildren();
      return;
    }
    chart.replaceChildren(...draw(report));
    windows.replaceChildren(...(report.windows.length
      ? report.windows.map((w) => windowItem(report.table, w))
      : [el('li', {}, 'No burst stands out from the usual rate of changes.')]));
  });
}

export function load() {
  return show(null);
}

export function setUp() {
  fillTableSelect(byId('loss-table'));
  byId('loss-table').value = 'DOSES';
  byId('loss-form').addEventListener('submit', (event) => {
    event.preventDefault();
    show(event.target.querySelector('button[type=submit]'));
  });
}
