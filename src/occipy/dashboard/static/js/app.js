// The dashboard: sign-in, navigation from the query interface, hash routes, error display.

import {ApiError, credentials, get, setCredentials} from './api.js';
import {fill, h, field} from './dom.js';
import {Model} from './model.js';
import * as ops from './ops.js';
import * as views from './views.js';

const main = document.getElementById('main');
const errorBox = document.getElementById('error');
const app = {model: null, render: () => route()};

// ---- errors --------------------------------------------------------------------------------

export function showError(error) {
  const text = error instanceof ApiError
    ? `${error.status} ${error.statusText}: ${error.message}`
    : String(error?.message || error);
  fill(errorBox,
    h('p', {}, h('strong', {}, 'The server said: '), h('span', {class: 'error-text'}, text)),
    h('button', {type: 'button', onclick: clearError}, 'Dismiss'));
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorBox.replaceChildren();
}

app.showError = showError;
app.clearError = clearError;

// ---- sign-in -------------------------------------------------------------------------------

function methodsFrom(challenge) {
  const text = (challenge || '').toLowerCase();
  return {basic: text.includes('basic'), bearer: text.includes('bearer')};
}

function signIn(reason, challenge) {
  ops.stopEvents();
  document.getElementById('nav').replaceChildren();
  const current = credentials() || {};
  const offered = methodsFrom(challenge);
  const preferred = current.method || (offered.bearer && !offered.basic ? 'bearer' : offered.basic ? 'basic' : 'anonymous');
  const radio = (value, label) => h('div', {class: 'choice'},
    h('input', {type: 'radio', name: 'method', id: `method-${value}`, value, checked: preferred === value,
      onchange: sync}),
    h('label', {for: `method-${value}`}, label));
  const user = h('input', {id: 'sign-in-user', name: 'user', autocomplete: 'username', value: current.user || ''});
  const password = h('input', {id: 'sign-in-password', name: 'password', type: 'password',
    autocomplete: 'current-password'});
  const token = h('input', {id: 'sign-in-token', name: 'token', type: 'password', autocomplete: 'off'});
  const basicFields = h('div', {}, field('User name', user), field('Password', password));
  const tokenFields = h('div', {}, field('Token', token, 'An access token, sent as "Authorization: Bearer".'));
  function sync() {
    const method = form.elements.method.value;
    basicFields.hidden = method !== 'basic';
    tokenFields.hidden = method !== 'bearer';
  }
  const form = h('form', {class: 'card sign-in', 'aria-labelledby': 'sign-in-title', onsubmit: submit},
    h('h2', {id: 'sign-in-title', tabIndex: -1}, 'Sign in'),
    reason ? h('p', {class: 'notice', role: 'status'}, reason) : null,
    h('fieldset', {},
      h('legend', {}, 'How this server knows you'),
      radio('basic', 'User name and password (HTTP Basic)'),
      radio('bearer', 'Access token (Bearer)'),
      radio('anonymous', 'No credentials (anonymous access)')),
    basicFields, tokenFields,
    h('button', {type: 'submit'}, 'Sign in'));
  async function submit(event) {
    event.preventDefault();
    const method = form.elements.method.value;
    if (method === 'basic') setCredentials({method, user: user.value, password: password.value});
    else if (method === 'bearer') setCredentials({method, token: token.value.trim()});
    else setCredentials({method: 'anonymous'});
    await start();
  }
  fill(main, form);
  sync();
  updateWho();
  form.querySelector('h2').focus();
}

function updateWho() {
  const c = credentials();
  const who = document.getElementById('who');
  const out = document.getElementById('sign-out');
  if (!c) {
    who.textContent = '';
    out.hidden = true;
    return;
  }
  who.textContent = c.method === 'basic' ? `Signed in as ${c.user}`
    : c.method === 'bearer' ? 'Signed in with a token' : 'Anonymous';
  out.hidden = false;
}

document.getElementById('sign-out').addEventListener('click', () => {
  setCredentials(null);
  app.model = null;
  signIn('Signed out.');
});

window.addEventListener('occipy:unauthorized', (event) => {
  // A 401 at any time brings the form back, with the server's words.
  signIn(`The server asks for credentials: ${event.detail.message}`, event.detail.challenge);
});

// ---- navigation ----------------------------------------------------------------------------

function buildNav() {
  const model = app.model;
  const links = model.servedKinds().map((kind) =>
    h('li', {}, h('a', {href: '#/kind/' + encodeURIComponent(kind.location)}, kind.title || kind.term)));
  links.push(h('li', {}, h('a', {href: '#/query'}, 'Query interface')));
  fill(document.getElementById('nav'), h('ul', {}, links));
}

function markCurrent() {
  for (const a of document.querySelectorAll('#nav a')) {
    if (location.hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** `#/name/arg?query` -> {name, arg, params}. */
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [pathPart, query = ''] = hash.split('?');
  const [name = '', ...rest] = pathPart.split('/');
  return {name, arg: decodeURIComponent(rest.join('/')), params: new URLSearchParams(query)};
}

// One render at a time: a refresh (an event from the stream) and a navigation may both ask; a
// render that started earlier must not finish later and show the older page. A request while one
// runs makes one more run after it, which reads the hash as it is then.
let routing = null;
let again = false;

async function route() {
  if (routing) {
    again = true;
    return routing;
  }
  routing = (async () => {
    do {
      again = false;
      await renderOnce();
    } while (again);
  })();
  try {
    await routing;
  } finally {
    routing = null;
  }
}

async function renderOnce() {
  if (!app.model) return;
  clearError();
  markCurrent();
  const {name, arg, params} = parseHash();
  const view = {kind: views.list, entity: views.entity, create: views.create, query: views.query}[name]
    || views.overview;
  try {
    await view(app, main, arg, params);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showError(error);
  }
  const heading = main.querySelector('h2');
  if (heading && !main.contains(document.activeElement)) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

window.addEventListener('hashchange', route);

// ---- start ---------------------------------------------------------------------------------

async function start() {
  clearError();
  try {
    app.model = await Model.load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the listener shows the form
    fill(main, h('h2', {}, 'The server cannot be reached'));
    showError(error);
    return;
  }
  if (!credentials()) setCredentials({method: 'anonymous'});
  updateWho();
  buildNav();
  ops.startEvents();
  await route();
}

app.reloadModel = async () => {
  app.model = await Model.load();
  buildNav();
};

ops.onChange((event) => views.changed(app, event));
start();
