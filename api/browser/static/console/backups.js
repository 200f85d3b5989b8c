// Backups: every snapshot and segment per stage, the last and next scheduled runs, verification
// per stage; start an incremental or full run.
import { expect, graphql } from './api.js';
import { byId, el, table, when } from './dom.js';
import { attempt } from './status.js';

const RUN = '{ kind cron lastDue nextDue late newest { stage id at } }';
const LIST = `query Backups { backups { configured stages scheduleProblem
  units { kind id rows bytes stages { stage state } }
  schedule { nextKind nextAt full ${RUN} incremental ${RUN} } } }`;
const START = `mutation StartBackup($kind: BackupKind!) { startBackup(kind: $kind) { __typename
  ... on BackupCompleted { kind snapshotId segmentId changes rows bytes seconds }
  ... on BackupBusy { message } ... on BackupNotConfigured { message }
  ... on OperationFailed { message } } }`;
const VERIFY = `mutation VerifyBackups($deep: Boolean!) { verifyBackups(deep: $deep) { __typename
  ... on BackupVerification { ok deep checkedAt
    stages { stage url units objects ok problems { key reason } } }
  ... on BackupNotConfigured { message } ... on OperationFailed { message } } }`;

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// One line per kind of run: when it is due, and the newest unit of that kind each stage holds.
function scheduled(label, run, unit) {
  const held = run.newest.map((n) => `${n.stage}: ${n.at ? when(n.at) : 'none'}`).join(', ');
  return el('li', { 'data-kind': run.kind.toLowerCase() },
    el('strong', {}, label), ` (${run.cron}) — last due ${when(run.lastDue)}, next due `,
    el('span', { class: 'next-due' }, when(run.nextDue)), `. Newest ${unit}: ${held}.`,
    run.late ? el('p', { class: 'warning' }, `Late: ${run.late}.`) : null);
}

function renderSchedule(backups) {
  const target = byId('backup-schedule');
  if (!backups.schedule) {
    target.replaceChildren(el('p', { class: 'warning' }, `The schedule cannot be shown: `
      + `${backups.scheduleProblem}.`));
    return;
  }
  const s = backups.schedule;
  target.replaceChildren(
    el('p', {}, 'Next scheduled run: ', el('strong', { id: 'next-run' },
      `${s.nextKind.toLowerCase()} at ${when(s.nextAt)}`),
    ' (the schedule ', el('code', {}, 'vaxvault backup schedule'), ' follows; a run that '
      + 'failed leaves nothing, so the newest unit is the last run that succeeded).'),
    el('ul', { class: 'schedule' }, scheduled('Full', s.full, 'snapshot'),
      scheduled('Incremental', s.incremental, 'segment')));
}

export async function load() {
  const { backups } = await graphql(LIST);
  const target = byId('backups-table');
  if (!backups.configured) {
    target.replaceChildren();
    byId('backup-schedule').replaceChildren();
    byId('backup-result').textContent = 'No backup repository is configured: set '
      + 'VAXVAULT_BACKUP_URL and restart the API.';
    return;
  }
  renderSchedule(backups);
  const rows = [...backups.units].reverse().map((unit) => [
    unit.kind, el('code', {}, unit.id), unit.rows, size(unit.bytes),
    ...backups.stages.map((stage) => {
      const held = unit.stages.find((s) => s.stage === stage);
      const state = held ? held.state.toLowerCase() : '';
      return el('span', { class: `state ${state}` }, state);
    }),
  ]);
  table(target, ['kind', 'id', 'rows / changes', 'size', ...backups.stages], rows);
  if (!rows.length) byId('backup-result').textContent = 'No backup yet: run a full backup first.';
}

function describe(done) {
  const what = done.kind === 'FULL'
    ? `Full backup ${done.snapshotId}: ${done.rows} rows`
    : `Incremental backup ${done.segmentId || '(nothing new)'}: ${done.changes} changes`;
  return `${what}, ${size(done.bytes)}, stored and verified in ${done.seconds.toFixed(2)} s.`;
}

async function start(kind, button) {
  await attempt(button, async () => {
    byId('backup-result').textContent = `Running a ${kind.toLowerCase()} backup…`;
    const { startBackup } = await graphql(START, { kind });
    const done = describe(expect(startBackup, 'BackupCompleted'));
    await load(); // the list first, so the sentence below describes what is on screen
    byId('backup-result').textContent = done;
  });
}

function outcome(stage) {
  if (!stage.units) return 'holds nothing to check';
  if (stage.ok) return `sound: ${stage.units} unit(s), ${stage.objects} object(s)`;
  return `${stage.problems.length} problem(s) in ${stage.units} unit(s), ${stage.objects} object(s)`;
}

function renderVerification(found) {
  const problems = found.stages.flatMap((s) => s.problems.map((p) => [
    s.stage, el('code', {}, p.key), p.reason]));
  const verdicts = el('table', { id: 'verify-stages' });
  table(verdicts, ['stage', 'outcome'], found.stages.map((s) => [
    s.stage, el('span', { class: s.ok ? 'state stored' : 'state missing' }, outcome(s))]));
  const list = el('table', { id: 'verify-problems' });
  if (problems.length) table(list, ['stage', 'object', 'problem'], problems);
  const kind = found.deep ? 'Deep verification (decrypted, decompressed, re-counted)'
    : 'Verification (present, size and SHA-256)';
  byId('verify-result').replaceChildren(
    el('p', { class: found.ok ? 'result' : 'result warning' }, found.ok
      ? `${kind} at ${when(found.checkedAt)}: every stage is sound.`
      : `${kind} at ${when(found.checkedAt)} found problems: a unit with a problem at one stage `
        + 'restores from another stage that holds it sound; run a full backup to replace it.'),
    ...[verdicts, problems.length ? list : null].filter((node) => node !== null));
}

async function verifyNow(deep, button) {
  await attempt(button, async () => {
    byId('verify-result').replaceChildren(el('p', { class: 'result' }, deep
      ? 'Verifying deeply (reads every object)…' : 'Verifying…'));
    const { verifyBackups } = await graphql(VERIFY, { deep });
    try {
      renderVerification(expect(verifyBackups, 'BackupVerification'));
    } catch (error) {
      byId('verify-result').replaceChildren();
      throw error;
    }
  });
}

export function setUp() {
  byId('backup-incremental').addEventListener('click', (e) => start('INCREMENTAL', e.target));
  byId('backup-full').addEventListener('click', (e) => start('FULL', e.target));
  byId('backups-refresh').addEventListener('click', (e) => attempt(e.target, load));
  byId('verify').addEventListener('click', (e) => verifyNow(false, e.target));
  byId('verify-deep').addEventListener('click', (e) => verifyNow(true, e.target));
}
