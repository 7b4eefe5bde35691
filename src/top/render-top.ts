// Renders /api/queues data as the `queuelens top` screen: a header, one line per queue sorted by the chosen
// column, unhealthy queues highlighted, and a key legend. Pure: the same lines go to a terminal or a pipe.
import type { TopSort } from '../config/top-config.js';
import { byBadness } from '../status/queue-board.js';
import { formatAge } from '../status/queue-health.js';
import type { QueuesResponse, QueueView } from '../status/queue-view.js';

export interface TopRenderOptions {
  sort: TopSort;
  reverse: boolean;
  width: number;
  /** Rows available on screen; undefined = print every queue. */
  height?: number;
  color: boolean;
  /** Where the data comes from, shown in the header. */
  source: string;
  /** The last refresh failed with this, if it did. */
  error?: string;
  /** Key legend at the bottom (interactive only). */
  legend: boolean;
}

const out1 = (q: QueueView) => (q.windows['1m'] ? q.windows['1m'].rates.completed + q.windows['1m'].rates.failed : null);
const KEY: Record<Exclude<TopSort, 'badness' | 'name'>, (q: QueueView) => number> = {
  backlog: (q) => q.backlog,
  age: (q) => q.oldestWaitingAgeSeconds,
  in: (q) => q.windows['1m']?.rates.added ?? -1,
  out: (q) => out1(q) ?? -1,
  fail: (q) => q.windows['15m']?.failureRatio ?? -1,
  dlq: (q) => q.deadLetter?.jobs ?? -1,
  workers: (q) => q.workers ?? -1,
};

/** Worst (or largest) first; `name` is A to Z; `reverse` flips either. */
export function sortQueues(queues: readonly QueueView[], sort: TopSort, reverse: boolean): QueueView[] {
  const cmp =
    sort === 'badness'
      ? byBadness
      : sort === 'name'
        ? (a: QueueView, b: QueueView) => a.name.localeCompare(b.name) || a.prefix.localeCompare(b.prefix)
        : (a: QueueView, b: QueueView) => KEY[sort](b) - KEY[sort](a) || byBadness(a, b);
  const sorted = [...queues].sort(cmp);
  return reverse ? sorted.reverse() : sorted;
}

const rate = (r: number | null | undefined) => (r == null ? '—' : r === 0 ? '0' : r < 10 ? r.toFixed(2) : r.toFixed(0));
const pct = (r: number | null | undefined) => (r == null ? '—' : `${(r * 100).toFixed(1)}%`);
const age = (s: number | null | undefined) => (s == null ? '—' : s === 0 ? '0' : formatAge(s));

interface Column {
  title: string;
  sort?: TopSort;
  width: number;
  left?: boolean;
  value: (q: QueueView) => string;
}

const COLUMNS: Column[] = [
  { title: 'HEALTH', width: 7, left: true, value: (q) => ({ ok: 'ok', warning: 'WARN', critical: 'CRIT' })[q.health.status] },
  {
    title: 'QUEUE',
    sort: 'name',
    width: 0,
    left: true,
    value: (q) => (q.prefix === 'bull' ? q.name : `${q.prefix}:${q.name}`) + (q.paused ? ' (paused)' : ''),
  },
  { title: 'BACKLOG', sort: 'backlog', width: 7, value: (q) => String(q.backlog) },
  { title: 'ACTIVE', width: 6, value: (q) => String(q.jobs.active) },
  { title: 'DELAYED', width: 7, value: (q) => String(q.jobs.delayed) },
  { title: 'OLDEST', sort: 'age', width: 7, value: (q) => age(q.oldestWaitingAgeSeconds) },
  { title: 'IN/s', sort: 'in', width: 6, value: (q) => rate(q.windows['1m']?.rates.added) },
  { title: 'OUT/s', sort: 'out', width: 6, value: (q) => rate(out1(q)) },
  { title: 'FAIL%', sort: 'fail', width: 6, value: (q) => pct(q.windows['15m']?.failureRatio) },
  { title: 'P95WAIT', width: 7, value: (q) => age(q.windows['15m']?.wait.p95) },
  { title: 'DLQ', sort: 'dlq', width: 5, value: (q) => (q.deadLetter ? String(q.deadLetter.jobs) : '—') },
  { title: 'WORKERS', sort: 'workers', width: 7, value: (q) => (q.workers === null ? '?' : String(q.workers)) },
];

const DROP_ORDER = ['DELAYED', 'ACTIVE', 'P95WAIT', 'IN/s', 'FAIL%'];
const WHY_MIN = 24;

const ESC = { reset: '\x1b[0m', bold: '\x1b[1m', inverse: '\x1b[7m', red: '\x1b[31m', yellow: '\x1b[33m', dim: '\x1b[2m' };

/** Cuts to `width` visible characters (the strings here carry no escapes until styled). */
function fit(s: string, width: number): string {
  return [...s].length <= width ? s : `${[...s].slice(0, Math.max(0, width - 1)).join('')}…`;
}

function pad(s: string, width: number, left: boolean): string {
  const t = fit(s, width);
  const n = width - [...t].length;
  return left ? t + ' '.repeat(n) : ' '.repeat(n) + t;
}

export function renderTop(res: QueuesResponse | undefined, o: TopRenderOptions): string[] {
  const style = (s: string, ...codes: string[]) => (o.color && codes.length > 0 ? codes.join('') + s + ESC.reset : s);
  const lines: string[] = [];
  const queues = res ? sortQueues(res.queues, o.sort, o.reverse) : [];
  const count = (st: string) => queues.filter((q) => q.health.status === st).length;
  const when = new Date().toISOString().slice(11, 19);
  const summary = res
    ? `${queues.length} queues: ${count('critical')} critical, ${count('warning')} warning` +
      (res.collection.ageSeconds !== null ? ` · data ${formatAge(res.collection.ageSeconds)} old` : '')
    : 'waiting for data';
  lines.push(style(fit(`queuelens top · ${o.source} · ${summary} · ${when}`, o.width), ESC.bold));
  if (o.error) lines.push(style(fit(`! ${o.error}`, o.width), ESC.red));
  if (res && !res.collection.ok) lines.push(style(fit(`! collection failing: ${res.collection.error ?? 'unknown error'}`, o.width), ESC.red));
  if (res && res.collection.ok && !res.accountingAvailable)
    lines.push(style(fit('rates and latency need the event reader: shown as — until it has data', o.width), ESC.dim));

  const nameWidth = Math.min(32, Math.max(8, ...queues.map((q) => COLUMNS[1]!.value(q).length)));
  let cols = COLUMNS.map((c) => (c.title === 'QUEUE' ? { ...c, width: nameWidth } : c));
  // A narrow terminal drops the least telling columns first rather than cutting off the right-hand ones,
  // keeping room for the reasons when a queue has any.
  const budget = o.width - (queues.some((q) => q.health.reasons.length > 0) ? WHY_MIN : 0);
  for (const drop of DROP_ORDER) {
    if (cols.reduce((n, c) => n + c.width + 1, 0) <= budget) break;
    cols = cols.filter((c) => c.title !== drop);
  }
  const fixed = cols.reduce((n, c) => n + c.width + 1, 0);
  const reasonWidth = o.width - fixed;
  const mark = (c: Column) => (c.sort === o.sort || (o.sort === 'badness' && c.title === 'HEALTH') ? (o.reverse ? '▴' : '▾') : '');
  const header = cols.map((c) => pad(c.title + mark(c), c.width, c.left ?? false)).join(' ') + (reasonWidth >= 8 ? ` ${pad('WHY', reasonWidth, true)}` : '');
  lines.push(style(fit(o.legend ? header : header.trimEnd(), o.width), ESC.inverse));

  const room = o.height === undefined ? queues.length : Math.max(1, o.height - lines.length - (o.legend ? 2 : 0));
  const shown = queues.length > room ? queues.slice(0, room - 1) : queues;
  for (const q of shown) {
    let line = cols.map((c) => pad(c.value(q), c.width, c.left ?? false)).join(' ');
    if (reasonWidth >= 8 && q.health.reasons.length > 0) line += ` ${fit(q.health.reasons.map((r) => r.message).join('; '), reasonWidth)}`;
    line = fit(line, o.width);
    lines.push(q.health.status === 'critical' ? style(line, ESC.bold, ESC.red) : q.health.status === 'warning' ? style(line, ESC.yellow) : line);
  }
  if (shown.length < queues.length) lines.push(style(`… ${queues.length - shown.length} more (widen the terminal or sort differently)`, ESC.dim));
  if (res && queues.length === 0 && res.collection.ok) lines.push('no BullMQ queues found');
  if (o.legend) {
    lines.push('');
    lines.push(
      style(
        fit(
          `sort: ${o.sort}${o.reverse ? ' (reversed)' : ''} · keys: b badness  n name  d backlog  a age  i in  o out  f fail  l dlq  w workers  r reverse  q quit`,
          o.width,
        ),
        ESC.dim,
      ),
    );
  }
  return lines;
}
