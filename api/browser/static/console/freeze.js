// Privacy freeze: the freezes in force; set one, or lift one, with a reason.
import { ConsoleError, graphql } from './api.js';
import { byId, el, table, when } from './dom.js';
import { attempt } from './status.js';

const LIST = 'query Freezes { privacyFreezes { districtId active until reason } }';
const SET = `mutation SetFreeze($scope: FreezeScope!, $districtId: ID, $until: DateTime,
    $reason: String!) {
  setPrivacyFreeze(scope: $scope, districtId: $districtId, until: $until, reason: $reason) {
    __typename ... on PrivacyFreeze { districtId active until }
    ... on ValidationFailed { field message } } }`;

async function change(variables) {
  const { setPrivacyFreeze: result } = await graphql(SET, variables);
  if (result.__typename === 'ValidationFailed') {
    throw new ConsoleError(`${result.field}: ${result.message}.`);
  }
  const where = result.districtId ? `district ${result.districtId}` : 'the whole country';
  await load(); // the list first, so the sentence below describes what is on screen
  byId('freeze-result').textContent = result.active
    ? `Frozen for ${where} until ${when(result.until)}.` : `Lifted for ${where}.`;
}

function reason() {
  const text = byId('freeze-reason').value.trim();
  if (!text) throw new ConsoleError('Say why in Reason: it is kept in the audit log.');
  return text;
}

export async function load() {
  const { privacyFreezes } = await graphql(LIST);
  const target = byId('freeze-table');
  if (!privacyFreezes.length) {
    target.replaceChildren(el('caption', {}, 'No freeze is in force: every role sees what '
      + 'the policy grants it.'));
    return;
  }
  table(target, ['scope', 'until', 'reason', ''], privacyFreezes.map((f) => [
    f.districtId ? `district ${f.districtId}` : 'national', when(f.until), f.reason,
    el('button', { type: 'button', class: 'lift', onclick: (e) => attempt(e.target, () => change({
      scope: f.districtId ? 'DISTRICT' : 'NATIONAL', districtId: f.districtId, until: null,
      reason: reason() })) }, 'Lift'),
  ]));
}

export function setUp() {
  byId('freeze-scope').addEventListener('change', () => {
    byId('freeze-district').disabled = byId('freeze-scope').value !== 'DISTRICT';
  });
  byId('freeze-form').addEventListener('submit', (event) => {
    event.preventDefault();
    attempt(byId('freeze-set'), () => {
      const until = byId('freeze-until').value.trim();
      if (!until) throw new ConsoleError('Give Until: when the freeze ends, with its offset.');
      const scope = byId('freeze-scope').value;
      return change({ scope, districtId: scope === 'DISTRICT' ? byId('freeze-district').value
        : null, until, reason: reason() });
    });
  });
}
