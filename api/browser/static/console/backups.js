// Backups: every snapshot and segment per stage; start an incremental or full run.
import { expect, graphql } from './api.js';
import { byId, el, table } from './dom.js';
import { attempt } from './status.js';

const LIST = `query Backups { backups { configured stages
  units { kind id rows bytes stages { stage state } } } }`;
const START = `mutation StartBackup($kind: BackupKind!) { startBackup(kind: $kind) { __typename
  ... on BackupCompleted { kind snapshotId segmentId changes rows bytes seconds }
  ... on BackupBusy { message } ... on BackupNotConfigured { message }
  ... on OperationFailed { message } } }`;

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export async function load() {
  const { backups } = await graphql(LIST);
  const target = byId('backups-table');
  if (!backups.configured) {
    target.replaceChildren();
    byId('backup-result').textContent = 'No backup repository is configured: set '
      + 'VAXVAULT_BACKUP_URL and restart the API.';
    return;
  }
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

export function setUp() {
  byId('backup-incremental').addEventListener('click', (e) => start('INCREMENTAL', e.target));
  byId('backup-full').addEventListener('click', (e) => start('FULL', e.target));
  byId('backups-refresh').addEventListener('click', (e) => attempt(e.target, load));
}
