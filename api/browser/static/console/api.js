// GraphQL calls with the tab's token, and failures turned into sentences an operator can act on.
const TOKEN_KEY = 'vaxvault.console.token';

export class ConsoleError extends Error {}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function sentence(text) {
  const trimmed = String(text).trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function explain(error) {
  const code = error.extensions && error.extensions.code;
  if (code === 'FORBIDDEN') {
    return 'This token may not do that: the console needs a token of role admin '
      + '(vaxvault token --role admin --sub YOUR-NAME).';
  }
  if (code === 'UNAUTHENTICATED') {
    return sentence(`The server refused the token: ${error.message}. Sign out and sign in `
      + 'with a fresh admin token');
  }
  return sentence(error.message);
}

export async function graphql(query, variables = {}, token = storedToken()) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/graphql-response+json, application/json',
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (failure) {
    throw new ConsoleError('The vaxvault server did not answer. Check that it is running, '
      + 'then try again.');
  }
  let body;
  try {
    body = await response.json();
  } catch (failure) {
    throw new ConsoleError(`The server answered ${response.status} ${response.statusText} `
      + 'instead of GraphQL. Check the server log.');
  }
  if (body.errors && body.errors.length) {
    throw new ConsoleError(body.errors.map(explain).join(' '));
  }
  return body.data;
}

// A union answer that is not the expected type carries a message: raise it as a sentence.
export function expect(result, typename) {
  if (result === null || result === undefined) {
    throw new ConsoleError('The server gave no answer for this request. Check the server log.');
  }
  if (result.__typename !== typename) {
    throw new ConsoleError(sentence(result.message || `unexpected answer ${result.__typename}`));
  }
  return result;
}
