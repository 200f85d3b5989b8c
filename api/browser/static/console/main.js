// The console's shell: sign in with an admin token (kept in sessionStorage), tabs, sign out.
import { ConsoleError, forgetToken, graphql, keepToken, storedToken } from './api.js';
import * as backups from './backups.js';
import { byId } from './dom.js';
import * as freeze from './freeze.js';
import * as loss from './loss.js';
import * as restore from './restore.js';
import { attempt, clearError } from './status.js';

const PANELS = { backups, loss, restore, freeze };

async function whoIs(token) {
  const data = await graphql('query Me { me { role sub } }', {}, token);
  if (data.me.role !== 'admin') {
    throw new ConsoleError(`This token is for role ${data.me.role}; the console needs a token `
      + 'of role admin (vaxvault token --role admin --sub YOUR-NAME).');
  }
  return data.me;
}

export function openTab(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.classList.toggle('current', tab.dataset.tab === name);
  }
  for (const panelName of Object.keys(PANELS)) byId(panelName).hidden = panelName !== name;
  return attempt(null, () => PANELS[name].load());
}

function showApp(me) {
  byId('sign-in').hidden = true;
  byId('app').hidden = false;
  byId('sign-out').hidden = false;
  byId('who').textContent = `signed in as ${me.sub || 'admin'} (admin)`;
  return openTab('backups');
}

function showSignIn() {
  byId('app').hidden = true;
  byId('sign-out').hidden = true;
  byId('who').textContent = '';
  byId('sign-in').hidden = false;
}

async function start() {
  for (const panel of Object.values(PANELS)) panel.setUp();
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => openTab(tab.dataset.tab));
  }
  document.addEventListener('propose-as-of', () => openTab('restore'));
  byId('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const button = event.target.querySelector('button');
    attempt(button, async () => {
      const token = byId('token').value.trim().replace(/^Bearer\s+/i, '');
      const me = await whoIs(token);
      keepToken(token);
      byId('token').value = '';
      await showApp(me);
    });
  });
  byId('sign-out').addEventListener('click', () => {
    forgetToken();
    clearError();
    showSignIn();
  });
  const token = storedToken();
  if (!token) {
    showSignIn();
    return;
  }
  const me = await attempt(null, () => whoIs(token));
  if (me) await showApp(me);
  else {
    forgetToken();
    showSignIn();
  }
}

start();
