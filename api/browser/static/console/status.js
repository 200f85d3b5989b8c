// The one place errors are shown: a sentence at the bottom of the page.
import { byId } from './dom.js';

export function showError(error) {
  const box = byId('error');
  box.textContent = error && error.message ? error.message : String(error);
  box.hidden = false;
}

export function clearError() {
  byId('error').hidden = true;
  byId('error').textContent = '';
}

// Runs an action of a button or form: errors become sentences, the button is busy meanwhile.
export async function attempt(button, action) {
  clearError();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}
