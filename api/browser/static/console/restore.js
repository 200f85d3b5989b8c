// Plan and restore: a filter builder -> planRestore (counts, sample diff, conflicts), then
// restoreRecords with a live progress bar from restoreJob, and the history from the audit log.
import { ConsoleError, expect, graphql } from './api.js';
import { byId, el, table, when } from './dom.js';
import { attempt } from './status.js';
import { TABLES, fillTableSelect } from './tables.js';

const DIFF = '{ key { column value } action reason columns { column now atT masked } }';
const PLAN = `query PlanRestore($input: RestoreInput!, $reveal: Boolean!) {
  planRestore(input: $input, revealPersonal: $reveal) { __typename
  ... on RestorePlan { table asOf predicate snapshotId segments chunksRead chunksTotal matched
    counts { reinsert writeBack conflict untouched } conflictsTotal usedLiveLog warnings
    sample ${DIFF} conflicts ${DIFF} parents { table rows } }
  ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }`;
const RESTORE = `mutation RestoreRecords($input: RestoreInput!) { restoreRecords(input: $input) {
  __typename ... on RestoreJob { id status progress }
  ... on RestoreNotConfigured { message } ... on OperationFailed { message } } }`;
const JOB = `query RestoreJob($id: ID!) { restoreJob(id: $id) { id status progress fraction
  restored reinserted writtenBack overwritten conflictsTotal seconds auditEntryId error warnings
  counts { reinsert writeBack conflict untouched } } }`;
const HISTORY = `query RestoreHistory { auditLog(filter: {action: "restore"}, first: 100) {
  edges { node { id at actorSub operation detail } } } }`;
const OPERATORS = [['EQ', '='], ['IN', 'in'], ['BETWEEN', 'between'], ['IS_NULL', 'is null']];
const POLL_MS = 250;

let planned = null; // the input of the last plan: what Restore runs

function conditionRow(column = '', operator = 'EQ', values = '') {
  const row = el('div', { class: 'condition row' },
    el('input', { class: 'column', list: 'columns', placeholder: 'column', value: column,
      'aria-label': 'column' }),
    el('select', { class: 'operator', 'aria-label': 'operator' },
      OPERATORS.map(([value, label]) => el('option', { value, selected: value === operator },
        label))),
    el('input', { class: 'values', placeholder: 'value (IN: a, b, c; BETWEEN: low, high)',
      value: values, size: 36, 'aria-label': 'values' }),
    el('button', { type: 'button', class: 'quiet', onclick: () => row.remove() }, 'Remove'));
  return row;
}

function columnsList() {
  const list = byId('columns') || el('datalist', { id: 'columns' });
  list.replaceChildren(...TABLES[byId('plan-table').value].map((c) => el('option', { value: c })));
  if (!list.isConnected) document.body.append(list);
}

function readInput() {
  const asOf = byId('plan-as-of').value.trim();
  if (!asOf) throw new ConsoleError('Give T (as of): a time with its offset, e.g. '
    + '2026-11-22T02:00:00+06:00, or pick a burst in Find loss.');
  const filter = [...document.querySelectorAll('#conditions .condition')].map((row) => {
    const column = row.querySelector('.column').value.trim();
    const operator = row.querySelector('.operator').value;
    const text = row.querySelector('.values').value.trim();
    if (!column) throw new ConsoleError('A condition has no column: choose one or remove it.');
    const values = operator === 'IS_NULL' ? [] : operator === 'EQ' ? [text]
      : text.split(',').map((v) => v.trim()).filter((v) => v !== '');
    return { column, operator, values };
  });
  return { asOf, table: byId('plan-table').value, filter,
    onConflict: byId('plan-on-conflict').value, withParents: byId('plan-with-parents').checked };
}

// Personal values come withheld by the server (masked) until the admin reveals them.
function shown(change, value) {
  if (change.masked) return el('span', { class: 'masked', title: 'withheld' }, '••••••');
  if (value === null || value === undefined) return el('span', { class: 'null' }, 'NULL');
  return value;
}

// A re-inserted row is gone now: show it as it was at T on one line; otherwise now -> at T.
function changes(d) {
  if (d.action === 'reinsert') {
    return el('p', { class: 'row-at-t' }, d.columns.flatMap((c, i) => [i ? ', ' : '',
      el('code', {}, c.column), '=', shown(c, c.atT)]));
  }
  return el('ul', { class: 'changes' }, d.columns.map((c) => el('li', {}, el('code', {}, c.column),
    ': ', shown(c, c.now), ' → ', shown(c, c.atT))));
}

function diffRows(diffs) {
  return diffs.map((d) => [
    d.key.map((k) => `${k.column}=${k.value}`).join(', '), d.action.replace('_', ' '), d.reason,
    changes(d),
  ]);
}

// What the restore cannot vouch for, said before the counts so it is read first.
function warningList(warnings, id, heading) {
  if (!warnings || !warnings.length) return null;
  return el('div', { id, class: 'warning' }, el('strong', {}, heading),
    el('ul', { class: 'warnings' }, warnings.map((w) => el('li', {}, `${w.charAt(0)
      .toUpperCase()}${w.slice(1)}.`))));
}

function renderPlan(plan, revealed) {
  const target = byId('plan-result');
  const count = (label, value, name) => el('div', { class: `count ${name}`, 'data-count': name },
    el('strong', {}, String(value)), el('span', {}, label));
  const withheld = [...plan.sample, ...plan.conflicts].some((d) => d.columns.some((c) => c.masked));
  const sample = el('table', { id: 'plan-sample' });
  const conflicts = el('table', { id: 'plan-conflicts' });
  table(sample, ['row', 'action', 'why', 'columns (now → at T)'], diffRows(plan.sample));
  table(conflicts, ['row', 'action', 'why', 'column: now → at T'], diffRows(plan.conflicts));
  const reveal = withheld ? el('p', { class: 'reveal' }, el('button', { type: 'button',
    id: 'reveal', class: 'quiet', onclick: (event) => planNow(event.target, true) },
  'Reveal personal values'), ' Names, national IDs, phones and birth dates are withheld. '
    + 'Revealing them plans again and is recorded in the audit log as a read of each person '
    + 'shown (they see it in their access log).') : null;
  const note = revealed ? el('p', { class: 'reveal' }, 'Personal values revealed: this read '
    + 'is in the audit log.') : null;
  target.replaceChildren(...[
    warningList(plan.warnings, 'plan-warnings', 'Read before restoring:'),
    el('p', { class: 'summary' }, `As of ${plan.asOf}: ${plan.matched} row(s) of ${plan.table} `
      + `match ${plan.predicate || 'every row'} (snapshot ${plan.snapshotId} + ${plan.segments} `
      + `segment(s), ${plan.chunksRead} of ${plan.chunksTotal} chunk(s) read`
      + `${plan.usedLiveLog ? ', and the live change log' : ''}). Nothing was written.`),
    el('div', { class: 'counts' }, count('to re-insert', plan.counts.reinsert, 'reinsert'),
      count('to write back', plan.counts.writeBack, 'write-back'),
      count('conflicts', plan.counts.conflict, 'conflict'),
      count('untouched', plan.counts.untouched, 'untouched')),
    plan.parents.length ? el('p', {}, 'Parent rows gone too: ', plan.parents.map(
      (p) => `${p.rows} ${p.table}`).join(', '), '. Tick "with parents" to restore them.') : null,
    reveal, note,
    el('h3', {}, 'Sample'), sample,
    plan.conflictsTotal ? el('h3', {}, `Conflicts (${plan.conflictsTotal}): changed again `
      + 'after the damage, skipped unless you choose overwrite') : null,
    plan.conflictsTotal ? conflicts : null].filter((node) => node !== null));
}

// Plans what the form says; with reveal, the plan shown last again, personal values revealed.
async function planNow(button, reveal = false) {
  await attempt(button, async () => {
    const input = reveal && planned ? planned : readInput();
    byId('run').hidden = true;
    byId('plan-result').replaceChildren(el('p', {}, 'Planning…'));
    let result;
    try {
      result = expect((await graphql(PLAN, { input, reveal })).planRestore, 'RestorePlan');
    } catch (error) {
      byId('plan-result').replaceChildren();
      throw error;
    }
    renderPlan(result, reveal);
    planned = input;
    const rows = result.counts.reinsert + result.counts.writeBack;
    byId('restore-button').textContent = `Restore ${rows} row(s) as of ${result.asOf}`;
    byId('restore-button').disabled = rows === 0 && result.counts.conflict === 0;
    byId('restore-status').textContent = rows === 0 ? 'Nothing to restore.' : '';
    byId('restore-progress').hidden = true;
    byId('run').hidden = false;
  });
}

function finished(job) {
  const skipped = job.conflictsTotal ? `; ${job.conflictsTotal} conflict(s) skipped` : '';
  const warned = job.warnings && job.warnings.length ? ' Read the warnings above.' : '';
  return `Restored ${job.restored} row(s): ${job.reinserted} re-inserted, ${job.writtenBack} `
    + `written back, ${job.overwritten} overwritten in ${job.seconds} s${skipped}. `
    + `Audit entry ${job.auditEntryId}.${warned}`;
}

async function follow(id) {
  const progress = byId('restore-progress');
  const status = byId('restore-status');
  const warnings = byId('restore-warnings');
  progress.hidden = false;
  progress.value = 0;
  warnings.replaceChildren();
  for (;;) {
    const { restoreJob: job } = await graphql(JOB, { id });
    progress.value = job.fraction;
    if (job.status === 'SUCCEEDED') {
      const listed = warningList(job.warnings, 'job-warnings',
        'What this restore could not vouch for:');
      if (listed) warnings.replaceChildren(listed);
      status.textContent = finished(job);
      return;
    }
    if (job.status === 'FAILED') {
      progress.hidden = true;
      throw new ConsoleError(`Restore job ${id} failed: ${job.error}`);
    }
    status.textContent = `Restore job ${id} ${job.status.toLowerCase()}, `
      + `${Math.round(job.fraction * 100)}%: ${job.progress}`;
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
}

async function run(button) {
  await attempt(button, async () => {
    if (!planned) throw new ConsoleError('Plan first: the restore runs what the plan showed.');
    const { restoreRecords } = await graphql(RESTORE, { input: planned });
    const job = expect(restoreRecords, 'RestoreJob');
    await follow(job.id);
    await history();
  });
  button.disabled = true; // a second run would restore nothing: plan again to see
}

async function history() {
  const { auditLog } = await graphql(HISTORY);
  const runs = auditLog.edges.map((e) => e.node)
    .filter((n) => n.detail && n.detail.operation === 'restoreRecords');
  table(byId('restore-history'), ['when', 'by', 'table', 'as of', 'rows', 'outcome'],
    runs.map((n) => {
      const d = n.detail || {};
      return [when(n.at), n.actorSub || '', d.table || '', d.as_of || '', d.predicate || 'all',
        d.outcome === 'started' ? `job ${d.job_id}` : (d.outcome || '')];
    }));
  if (!runs.length) byId('restore-history').replaceChildren(el('caption', {}, 'No restore yet.'));
}

export function load() {
  return history();
}

export function setUp() {
  fillTableSelect(byId('plan-table'));
  byId('plan-table').value = 'DOSES';
  columnsList();
  byId('plan-table').addEventListener('change', columnsList);
  byId('add-condition').addEventListener('click', () => byId('conditions').append(conditionRow()));
  byId('plan-form').addEventListener('submit', (event) => {
    event.preventDefault();
    planNow(byId('plan-button'));
  });
  byId('restore-button').addEventListener('click', (event) => run(event.target));
  document.addEventListener('propose-as-of', (event) => {
    byId('plan-as-of').value = event.detail.asOf;
    byId('plan-table').value = event.detail.table;
    columnsList();
    byId('plan-result').replaceChildren(el('p', {}, `T proposed from the burst of `
      + `${event.detail.signal}s: just before its largest transaction. Add conditions to `
      + 'narrow the rows, then plan.'));
    byId('run').hidden = true;
  });
}
