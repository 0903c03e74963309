// The pages: overview, entity lists, one entity, the create form and the query-interface browser.

import {get, listWithLocations, request} from './api.js';
import {fill, h, field, pathOf, term, uid} from './dom.js';
import {control, describe, readValue} from './forms.js';
import {INFRA, LINK as LINK_KIND, OS_TPL, RESOURCE_TPL, typeId} from './model.js';
import * as ops from './ops.js';

const PAGE_SIZES = [10, 25, 50, 100];
const HIDDEN_ON_CREATE = new Set(['occi.core.id', 'occi.core.source', 'occi.core.target', 'occi.core.target.kind']);

let current = {name: null, key: null, refresh: null, related: new Set()};
let refreshTimer = null;
// A refresh replaces the page: not while the user is at it (a click, a key, a choice in the page
// within this many ms, or a confirmation open), so that the page does not change under them.
const QUIET_MS = 1500;
let lastInteraction = 0;
for (const type of ['pointerdown', 'keydown', 'input', 'change']) {
  document.addEventListener(type, (event) => {
    if (event.target instanceof Element && event.target.closest('#main')) lastInteraction = Date.now();
  }, true);
}

/** Called for every operation update or stream event: refresh the page that shows it. */
export function changed(app, event) {
  if (!current.refresh || !concerns(app, event)) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshUnlessEditing, 150);
}

/** Whether an event may change what the current page shows. An operation matters once it has
 * ended; a change of another kind's entity does not touch a list, nor another entity's page
 * (its links excepted: the page shows them); `lost` (events were missed) concerns every page. */
function concerns(app, event) {
  if (event.type === 'lost') return true;
  if (event.type === 'operation' && !['succeeded', 'failed'].includes(event.state)) return false;
  if (!event.type && !event.state) return false;
  if (!event.location || !current.key) return true;
  const path = pathOf(event.location);
  if (current.name === 'list') {
    const kind = event.kind && app.model ? app.model.kinds.get(event.kind) : undefined;
    return path.startsWith(current.key) || (kind !== undefined && kind.location === current.key);
  }
  if (current.name === 'entity') return path === current.key || current.related.has(path);
  return true;
}

/** Refresh the page unless the user is in a form field (a refresh would throw away their input). */
function refreshUnlessEditing() {
  const active = document.activeElement;
  const editing = active && ['INPUT', 'SELECT', 'TEXTAREA'].includes(active.tagName)
    && document.getElementById('main').contains(active) && !active.closest('.filters');
  if (editing) {
    active.addEventListener('blur', () => { refreshTimer = setTimeout(refreshUnlessEditing, 150); }, {once: true});
    return;
  }
  const waited = Date.now() - lastInteraction;
  if (waited < QUIET_MS || document.querySelector('#main .confirm:not([hidden])')) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshUnlessEditing, Math.max(QUIET_MS - waited, 300));
    return;
  }
  if (current.refresh) current.refresh();
}

function page(name, key, refresh, related = []) {
  current = {name, key, refresh, related: new Set(related)};
}

function heading(text, ...extra) {
  return h('div', {class: 'page-head'}, h('h2', {tabIndex: -1}, text), extra);
}

function kindHref(location) {
  return '#/kind/' + encodeURIComponent(location);
}

export function entityHref(path) {
  return '#/entity/' + encodeURIComponent(pathOf(path));
}

function stateBadge(value) {
  if (value === undefined || value === null) return h('span', {class: 'muted'}, '—');
  return h('span', {class: `state state-${String(value).replace(/[^a-z0-9-]/gi, '')}`}, String(value));
}

/** Start tracking the operation of an answer, if it has one; resolves when it has ended. */
function follow(answer, label) {
  if (answer.operation) return ops.track(answer.operation, label);
  ops.note(`${label}: done`);
  return Promise.resolve({state: 'succeeded'});
}

// ---- overview -------------------------------------------------------------------------------

export async function overview(app, main) {
  page('overview', null, null);
  const model = app.model;
  const cards = model.servedKinds().map((kind) => h('li', {class: 'card'},
    h('h3', {}, h('a', {href: kindHref(kind.location)}, kind.title || kind.term)),
    h('p', {class: 'muted'}, typeId(kind)),
    model.isLinkKind(typeId(kind)) ? null
      : h('a', {class: 'button', href: '#/create/' + encodeURIComponent(kind.location)}, `Create ${kind.term}`)));
  fill(main, heading('Overview'),
    h('p', {}, `This server serves ${model.kinds.size} kinds, ${model.mixins.size} mixins and ${model.actions.size} actions.`),
    h('ul', {class: 'cards'}, cards));
}

// ---- lists ----------------------------------------------------------------------------------

export async function list(app, main, location, params) {
  const model = app.model;
  const kind = model.kindByLocation(location);
  if (!kind) throw new Error(`No kind is bound to ${location}`);
  const kindId = typeId(kind);
  const isLink = model.isLinkKind(kindId);
  const pageNo = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
  const number = PAGE_SIZES.includes(Number(params.get('number'))) ? Number(params.get('number')) : 25;
  const category = params.get('category') || '';
  const attribute = params.get('attribute') || '';
  const value = params.get('value') || '';
  const header = params.get('header') || '';

  const query = new URLSearchParams({page: String(pageNo), number: String(number)});
  if (category) query.set('category', category);
  if (attribute) {
    query.set('attribute', attribute);
    query.set('value', value);
  }
  const headers = header ? {'X-OCCI-Attribute': header} : {};
  const {data, locations} = await listWithLocations(`${location}?${query}`, {headers});
  const members = (isLink ? data?.links : data?.resources) || [];
  members.forEach((entity, i) => { entity.location = locations[i] ? pathOf(locations[i]) : entityLocation(model, entity); });

  // The collection rendering has no links: ask each entity of this page for its own rendering.
  const details = isLink ? members : await Promise.all(members.map(async (entity) => {
    try {
      const full = (await get(entity.location)).data || entity;
      full.location = entity.location;
      return full;
    } catch {
      return entity;
    }
  }));

  const subKinds = [...model.kinds.values()].filter((k) => model.ancestors(typeId(k)).includes(kindId));
  const categorySelect = h('select', {name: 'category'},
    h('option', {value: ''}, '(any)'),
    subKinds.length > 1 ? h('optgroup', {label: 'Kinds'},
      subKinds.map((k) => h('option', {value: typeId(k)}, k.title || k.term))) : null,
    h('optgroup', {label: 'Mixins'},
      model.applicableMixins(kindId).map((m) => h('option', {value: typeId(m)}, `${m.title || m.term} (${term(m.scheme.replace(/#$/, ''))})`))));
  categorySelect.value = category;
  const attributeSelect = h('select', {name: 'attribute'}, h('option', {value: ''}, '(none)'),
    Object.keys(model.attributeDefs(kindId)).map((name) => h('option', {value: name}, name)));
  attributeSelect.value = attribute;
  const valueInput = h('input', {name: 'value', value});
  const headerInput = h('input', {name: 'header', value: header, placeholder: 'occi.compute.cores=2'});
  const sizeSelect = h('select', {name: 'number'}, PAGE_SIZES.map((n) => h('option', {value: String(n)}, String(n))));
  sizeSelect.value = String(number);

  const filters = h('form', {class: 'filters', role: 'search', 'aria-label': 'Filter entities', onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams({page: '1', number: sizeSelect.value});
    if (categorySelect.value) next.set('category', categorySelect.value);
    if (attributeSelect.value) {
      next.set('attribute', attributeSelect.value);
      next.set('value', valueInput.value);
    }
    if (headerInput.value.trim()) next.set('header', headerInput.value.trim());
    window.location.hash = `${kindHref(kind.location)}?${next}`;
  }},
  field('Kind or mixin', categorySelect),
  field('Attribute', attributeSelect),
  field('has the value', valueInput),
  field('X-OCCI-Attribute filter', headerInput, 'name=value pairs, comma-separated (GFD.223 §7)'),
  field('Per page', sizeSelect),
  h('button', {type: 'submit'}, 'Apply filters'));

  const stateName = model.stateAttribute(kindId);
  const columns = isLink ? ['Title', 'Kind', 'State', 'Source', 'Target', 'Mixins']
    : ['Title', 'Kind', 'State', 'Mixins', 'Links'];
  const rows = details.map((entity) => {
    const path = pathOf(entityLocation(model, entity));
    const title = entity.title || entity.attributes?.['occi.core.title'] || entity.id;
    const state = entity.attributes?.[model.stateAttribute(entity.kind) || stateName];
    const mixins = h('ul', {class: 'tags'}, (entity.mixins || []).map((m) => h('li', {}, term(m))));
    const cells = [
      h('td', {}, h('a', {href: entityHref(path)}, title)),
      h('td', {}, term(entity.kind)),
      h('td', {}, stateBadge(state)),
    ];
    if (isLink) {
      cells.push(h('td', {}, linkTo(entity.source?.location)), h('td', {}, linkTo(entity.target?.location)), h('td', {}, mixins));
    } else {
      cells.push(h('td', {}, mixins), h('td', {}, h('ul', {class: 'tags'}, (entity.links || []).map((link) =>
        h('li', {}, `${term(link.kind)} → `, linkTo(link.target?.location))))));
    }
    return h('tr', {dataset: {location: path}}, cells);
  });
  const pager = (label, to, disabled) => disabled ? h('span', {class: 'button disabled', 'aria-disabled': 'true'}, label)
    : h('a', {class: 'button', href: `${kindHref(kind.location)}?${withPage(params, to, number)}`}, label);
  const table = h('table', {class: 'entities'},
    h('caption', {}, `${kind.title || kind.term}: page ${pageNo}, ${members.length} shown`),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', {colSpan: columns.length}, 'Nothing here.'))));
  fill(main,
    heading(kind.title || kind.term,
      isLink ? null : h('a', {class: 'button', href: '#/create/' + encodeURIComponent(kind.location)}, `Create ${kind.term}`),
      h('button', {type: 'button', onclick: () => app.render()}, 'Refresh')),
    h('p', {class: 'muted'}, typeId(kind)),
    filters, table,
    h('nav', {class: 'pager', 'aria-label': 'Pages'},
      pager('Previous page', pageNo - 1, pageNo <= 1),
      h('span', {}, ` Page ${pageNo} `),
      pager('Next page', pageNo + 1, members.length < number)));
  page('list', location, () => app.render());
}

function withPage(params, pageNo, number) {
  const next = new URLSearchParams(params);
  next.set('page', String(pageNo));
  next.set('number', String(number));
  return next;
}

function linkTo(target) {
  if (!target) return h('span', {class: 'muted'}, '—');
  const path = pathOf(target);
  return path.startsWith('/') ? h('a', {href: entityHref(path)}, path) : h('span', {}, target);
}

/** The location of an entity of a collection rendering: its kind's location + the id's uuid. */
function entityLocation(model, entity) {
  if (entity.location) return entity.location;
  const kind = model.kinds.get(entity.kind);
  const id = String(entity.id || '').replace(/^urn:uuid:/, '');
  return (kind?.location || '/') + id;
}

// ---- one entity -----------------------------------------------------------------------------

export async function entity(app, main, path) {
  const model = app.model;
  const {data: e} = await get(path);
  const kindId = e.kind;
  const kind = model.kinds.get(kindId) || {term: term(kindId)};
  const defs = model.attributeDefs(kindId, e.mixins || []);
  const stateName = model.stateAttribute(kindId);
  const attrs = e.attributes || {};
  const title = e.title || attrs['occi.core.title'] || e.id;
  const label = `${kind.term} ${title}`;

  // Actions the entity's state allows now (the rendering lists them), each with its parameters.
  const actionForms = h('div', {class: 'action-form'});
  const actionButtons = (e.actions || []).map((actionId) => {
    const action = model.action(actionId);
    return h('button', {type: 'button', dataset: {action: action.term},
      onclick: () => showActionForm(app, actionForms, path, actionId, label)}, `${action.term}…`);
  });

  // Attributes: mutable ones are editable, the rest shown as they are.
  const inputs = [];
  const attrRows = Object.keys({...defs, ...attrs}).filter((name) => name in attrs || defs[name]?.mutable)
    .map((name) => {
      const def = defs[name] || {type: typeof attrs[name] === 'number' ? 'number' : 'string', mutable: false};
      const value = attrs[name];
      let cell;
      if (def.mutable && !name.startsWith('occi.core.source') && !name.startsWith('occi.core.target')) {
        const el = control(name, def, value);
        el.id = uid('attr');
        el.dataset.original = value === undefined ? '' : JSON.stringify(value);
        inputs.push(el);
        cell = h('td', {}, h('label', {for: el.id, class: 'visually-hidden'}, name), el);
      } else {
        cell = h('td', {}, typeof value === 'object' ? JSON.stringify(value) : String(value ?? ''));
      }
      return h('tr', {}, h('th', {scope: 'row'}, name, h('small', {class: 'hint'}, describe(def))), cell);
    });
  const attrForm = h('form', {'aria-labelledby': 'attributes-title', onsubmit: async (event) => {
    event.preventDefault();
    const changes = {};
    try {
      for (const el of inputs) {
        const v = readValue(el);
        const before = el.dataset.original;
        if (v !== undefined && JSON.stringify(v) !== before) changes[el.name] = v;
      }
    } catch (error) {
      app.showError(error);
      return;
    }
    if (!Object.keys(changes).length) {
      ops.note(`${label}: nothing changed`);
      return;
    }
    const answer = await run(app, () => request('POST', path, {body: {kind: kindId, attributes: changes}}));
    if (answer) {
      follow(answer, `Update ${label}`).then(() => current.key === path && refreshUnlessEditing());
      await app.render();
    }
  }},
  h('h3', {id: 'attributes-title'}, 'Attributes'),
  h('table', {class: 'attributes'}, h('tbody', {}, attrRows)),
  inputs.length ? h('button', {type: 'submit'}, 'Save attributes') : null);

  // Mixins: the associated ones, and a form to associate another one that applies.
  const owned = new Set(e.mixins || []);
  const candidates = model.applicableMixins(kindId).filter((m) => !owned.has(typeId(m)));
  const mixinSelect = h('select', {name: 'mixin'}, candidates.map((m) =>
    h('option', {value: typeId(m)}, `${m.title || m.term} (${typeId(m)})`)));
  const mixinForm = h('form', {class: 'inline', onsubmit: async (event) => {
    event.preventDefault();
    if (!mixinSelect.value) return;
    const answer = await run(app, () => request('POST', path, {body: {kind: kindId, mixins: [mixinSelect.value]}}));
    if (answer) {
      follow(answer, `Associate ${term(mixinSelect.value)} with ${label}`).then(() => current.key === path && refreshUnlessEditing());
      await app.render();
    }
  }}, field('Mixin to associate', mixinSelect), h('button', {type: 'submit', disabled: !candidates.length}, 'Associate mixin'));

  const links = e.links || [];
  if (links.length && model.kinds.get(LINK_KIND)?.location) {
    // Link renderings carry ids, not locations: list this resource's links with their locations.
    try {
      const query = new URLSearchParams({attribute: 'occi.core.source', value: path});
      const {data, locations} = await listWithLocations(`${model.kinds.get(LINK_KIND).location}?${query}`);
      const byId = new Map((data?.links || []).map((link, i) => [link.id, locations[i]]));
      for (const link of links) if (byId.get(link.id)) link.location = pathOf(byId.get(link.id));
    } catch { /* fall back to the kind's location + id */ }
  }
  const linkTable = links.length ? h('table', {class: 'links'},
    h('thead', {}, h('tr', {}, ['Link', 'Kind', 'Target', 'State'].map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, links.map((link) => {
      const linkPath = entityLocation(model, link);
      const linkState = link.attributes?.[model.stateAttribute(link.kind)];
      return h('tr', {},
        h('td', {}, h('a', {href: entityHref(linkPath)}, link.title || link.id)),
        h('td', {}, term(link.kind)), h('td', {}, linkTo(link.target?.location)), h('td', {}, stateBadge(linkState)));
    }))) : h('p', {class: 'muted'}, 'No links.');

  const confirmBox = h('div', {class: 'confirm', hidden: true, role: 'group', 'aria-label': 'Confirm deletion'},
    h('p', {}, `Delete ${label}? This cannot be undone.`),
    h('button', {type: 'button', class: 'danger', onclick: async () => {
      const answer = await run(app, () => request('DELETE', path));
      if (answer) {
        follow(answer, `Delete ${label}`);
        window.location.hash = kindHref(kind.location || '/');
      }
    }}, 'Yes, delete'),
    h('button', {type: 'button', onclick: () => { confirmBox.hidden = true; deleteButton.focus(); }}, 'Cancel'));
  const deleteButton = h('button', {type: 'button', class: 'danger', onclick: () => {
    confirmBox.hidden = false;
    confirmBox.querySelector('button').focus();
  }}, 'Delete…');

  const message = Object.entries(attrs).find(([name]) => name.endsWith('.state.message'));
  fill(main,
    heading(title, h('button', {type: 'button', onclick: () => app.render()}, 'Refresh')),
    h('dl', {class: 'facts'},
      h('dt', {}, 'Kind'), h('dd', {}, kind.location ? h('a', {href: kindHref(kind.location)}, kind.title || kind.term) : kindId),
      h('dt', {}, 'Location'), h('dd', {}, h('code', {}, path)),
      h('dt', {}, 'Id'), h('dd', {}, h('code', {}, e.id)),
      stateName ? [h('dt', {}, 'State'), h('dd', {id: 'entity-state', 'aria-live': 'polite'}, stateBadge(attrs[stateName]))] : null,
      message ? [h('dt', {}, 'Message'), h('dd', {}, message[1])] : null,
      e.source ? [h('dt', {}, 'Source'), h('dd', {}, linkTo(e.source.location))] : null,
      e.target ? [h('dt', {}, 'Target'), h('dd', {}, linkTo(e.target.location))] : null),
    h('section', {'aria-labelledby': 'actions-title'},
      h('h3', {id: 'actions-title'}, 'Actions'),
      actionButtons.length ? h('div', {class: 'buttons'}, actionButtons)
        : h('p', {class: 'muted'}, 'No action is possible in this state (or an operation is running).'),
      actionForms),
    attrForm,
    h('section', {'aria-labelledby': 'mixins-title'},
      h('h3', {id: 'mixins-title'}, 'Mixins'),
      h('ul', {class: 'tags'}, [...owned].map((m) => h('li', {title: m}, term(m)))),
      mixinForm),
    h('section', {'aria-labelledby': 'links-title'}, h('h3', {id: 'links-title'}, 'Links'), linkTable),
    h('section', {'aria-labelledby': 'delete-title'}, h('h3', {id: 'delete-title'}, 'Delete'), deleteButton, confirmBox));
  page('entity', path, () => app.render(), links.map((link) => entityLocation(model, link)));
}

function showActionForm(app, container, path, actionId, label) {
  const action = app.model.action(actionId);
  const params = Object.entries(action.attributes || {});
  const controls = params.map(([name, def]) => control(name, def));
  const form = h('form', {class: 'card', 'aria-labelledby': 'action-title', onsubmit: async (event) => {
    event.preventDefault();
    const attributes = {};
    try {
      for (const el of controls) {
        const v = readValue(el);
        if (v !== undefined) attributes[el.name] = v;
      }
    } catch (error) {
      app.showError(error);
      return;
    }
    const body = {action: actionId};
    if (Object.keys(attributes).length) body.attributes = attributes;
    const answer = await run(app, () => request('POST', `${path}?action=${encodeURIComponent(action.term)}`, {body}));
    if (answer) {
      follow(answer, `${action.term} ${label}`).then(() => current.key === path && refreshUnlessEditing());
      await app.render();
    }
  }},
  h('h4', {id: 'action-title'}, `${action.title || action.term}`),
  h('p', {class: 'muted'}, actionId),
  params.length ? params.map(([name, def], i) => field(name, controls[i], describe(def))) : h('p', {}, 'No parameters.'),
  h('button', {type: 'submit'}, `Run ${action.term}`),
  h('button', {type: 'button', onclick: () => container.replaceChildren()}, 'Cancel'));
  fill(container, form);
  (controls[0] || form.querySelector('button')).focus();
}

/** Run a request; show the server's error and resolve to null when it fails. */
async function run(app, fn) {
  app.clearError();
  try {
    return await fn();
  } catch (error) {
    if (error.status !== 401) app.showError(error);
    return null;
  }
}

// ---- create ---------------------------------------------------------------------------------

export async function create(app, main, location) {
  const model = app.model;
  const kind = model.kindByLocation(location);
  if (!kind) throw new Error(`No kind is bound to ${location}`);
  const kindId = typeId(kind);
  const isLink = model.isLinkKind(kindId);
  const osTemplates = model.templates(OS_TPL);
  const resourceTemplates = model.templates(RESOURCE_TPL);
  const isCompute = kindId === INFRA + 'compute';
  const templateIds = new Set([...osTemplates, ...resourceTemplates].map(typeId));
  // Other mixins that apply (ssh_key, user_data, ipnetwork, user mixins); templates have selects.
  const others = model.applicableMixins(kindId).filter((m) => !templateIds.has(typeId(m))
    && typeId(m) !== OS_TPL && typeId(m) !== RESOURCE_TPL);

  const titleInput = h('input', {name: 'title', autocomplete: 'off'});
  const osSelect = h('select', {name: 'os_tpl'}, h('option', {value: ''}, '(none)'),
    osTemplates.map((m) => h('option', {value: typeId(m)}, m.title || m.term)));
  const sizeSelect = h('select', {name: 'resource_tpl'}, h('option', {value: ''}, '(none)'),
    resourceTemplates.map((m) => h('option', {value: typeId(m)}, describeTemplate(m))));
  const mixinBoxes = others.map((m) => h('input', {type: 'checkbox', name: 'mixin', value: typeId(m), id: uid('mixin'),
    onchange: () => renderAttributes()}));
  const attributeBox = h('fieldset', {}, h('legend', {}, 'Attributes'));
  let attributeControls = [];
  function renderAttributes() {
    const chosen = chosenMixins();
    const defs = model.attributeDefs(kindId, chosen);
    const keep = new Map(attributeControls.map((el) => [el.name, el.value]));
    attributeControls = Object.entries(defs)
      .filter(([name, def]) => !HIDDEN_ON_CREATE.has(name) && name !== 'occi.core.title'
        && !/\.state(\.message)?$/.test(name) && (def.mutable || def.required))
      .map(([name, def]) => {
        const el = control(name, def);
        if (keep.get(name)) el.value = keep.get(name);
        return el;
      });
    fill(attributeBox, h('legend', {}, 'Attributes'),
      attributeControls.map((el) => field(el.name, el, describe(defs[el.name]))));
  }
  function chosenMixins() {
    const ids = mixinBoxes.filter((box) => box.checked).map((box) => box.value);
    if (osSelect.value) ids.push(osSelect.value);
    if (sizeSelect.value) ids.push(sizeSelect.value);
    return ids;
  }
  osSelect.addEventListener('change', renderAttributes);
  sizeSelect.addEventListener('change', renderAttributes);

  // Links: computes connect to networks (networkinterface) and attach storage (storagelink).
  const linkGroups = [];
  if (!isLink) {
    for (const [targetTerm, linkTerm, legend] of [['network', 'networkinterface', 'Connect to networks'],
      ['storage', 'storagelink', 'Attach storage']]) {
      const target = model.kinds.get(INFRA + targetTerm);
      const linkKind = model.kinds.get(INFRA + linkTerm);
      if (!target?.location || !linkKind || !isCompute) continue;
      const {data, locations} = await listWithLocations(`${target.location}?page=1&number=100`);
      const boxes = (data?.resources || []).map((res, i) => {
        const path = locations[i] ? pathOf(locations[i]) : entityLocation(model, res);
        return {box: h('input', {type: 'checkbox', id: uid('link'), value: path, dataset: {linkKind: typeId(linkKind)}}),
          label: `${res.title || res.id} (${path})`};
      });
      linkGroups.push({legend, boxes});
    }
  }
  let source = null;
  let target = null;
  if (isLink) {
    const {data, locations} = await listWithLocations('/resource/?page=1&number=500');
    const options = (data?.resources || []).map((res, i) => {
      const path = locations[i] ? pathOf(locations[i]) : entityLocation(model, res);
      return h('option', {value: path}, `${term(res.kind)}: ${res.title || res.id}`);
    });
    source = h('select', {name: 'source', required: true}, options.map((o) => o.cloneNode(true)));
    target = h('select', {name: 'target', required: true}, options);
  }

  const form = h('form', {class: 'card create', 'aria-labelledby': 'create-title', onsubmit: async (event) => {
    event.preventDefault();
    const attributes = {};
    try {
      for (const el of attributeControls) {
        const v = readValue(el);
        if (v !== undefined) attributes[el.name] = v;
      }
    } catch (error) {
      app.showError(error);
      return;
    }
    const body = {kind: kindId, mixins: chosenMixins(), attributes};
    if (titleInput.value) body.title = titleInput.value;
    if (isLink) {
      body.source = {location: source.value};
      body.target = {location: target.value};
    } else {
      body.links = linkGroups.flatMap((group) => group.boxes.filter(({box}) => box.checked)
        .map(({box}) => ({kind: box.dataset.linkKind, target: {location: box.value}})));
      if (!body.links.length) delete body.links;
    }
    if (!body.mixins.length) delete body.mixins;
    const answer = await run(app, () => request('POST', location, {body}));
    if (!answer) return;
    const created = answer.location || (Array.isArray(answer.data) ? answer.data[0] : null);
    const name = `Create ${kind.term} ${titleInput.value || ''}`.trim();
    follow(answer, name);
    if (created) window.location.hash = entityHref(created);
  }},
  field('Title', titleInput),
  isCompute ? [field('OS template', osSelect), field('Resource template', sizeSelect)] : null,
  others.length ? h('fieldset', {}, h('legend', {}, 'Mixins'),
    mixinBoxes.map((box, i) => h('div', {class: 'choice'}, box, h('label', {for: box.id}, others[i].title || others[i].term)))) : null,
  isLink ? [field('Source', source), field('Target', target)] : null,
  attributeBox,
  linkGroups.map((group) => h('fieldset', {}, h('legend', {}, group.legend),
    group.boxes.length ? group.boxes.map(({box, label}) => h('div', {class: 'choice'}, box, h('label', {for: box.id}, label)))
      : h('p', {class: 'muted'}, 'None yet.'))),
  h('button', {type: 'submit'}, `Create ${kind.term}`));
  renderAttributes();
  fill(main, heading(`Create a ${kind.title || kind.term}`), h('p', {class: 'muted'}, kindId), form);
  page('create', location, null);
}

function describeTemplate(mixin) {
  const attrs = mixin.attributes || {};
  const cores = attrs['occi.compute.cores']?.default;
  const memory = attrs['occi.compute.memory']?.default;
  const size = cores !== undefined ? ` — ${cores} cores, ${memory} GiB` : '';
  return `${mixin.title || mixin.term}${size}`;
}

// ---- query interface ------------------------------------------------------------------------

export async function query(app, main) {
  await app.reloadModel();
  const model = app.model;
  const search = h('input', {type: 'search', name: 'q', autocomplete: 'off'});
  const body = h('div', {});
  const show = () => {
    const needle = search.value.trim().toLowerCase();
    const match = (c) => !needle || `${typeId(c)} ${c.title || ''}`.toLowerCase().includes(needle);
    fill(body,
      section('Kinds', [...model.kinds.values()].filter(match), (k) => [
        k.parent ? ['Parent', k.parent] : null, ['Location', k.location], ['Actions', (k.actions || []).join(', ')]]),
      section('Mixins', [...model.mixins.values()].filter(match), (m) => [
        ['Location', m.location], ['Depends on', (m.depends || []).join(', ')], ['Applies to', (m.applies || []).join(', ')],
        ['Actions', (m.actions || []).join(', ')]]),
      section('Actions', [...model.actions.values()].filter(match), () => []));
  };
  search.addEventListener('input', show);
  fill(main, heading('Query interface'),
    h('p', {}, 'Every kind, mixin and action this server serves (GET /-/), with the definitions of their attributes.'),
    h('div', {role: 'search'}, field('Filter categories', search)), body);
  show();
  page('query', null, null);
}

function section(title, categories, facts) {
  const id = uid('section');
  return h('section', {'aria-labelledby': id}, h('h3', {id}, `${title} (${categories.length})`),
    categories.map((c) => h('details', {class: 'category'},
      h('summary', {}, h('strong', {}, c.title || c.term), ' ', h('code', {}, typeId(c))),
      h('dl', {class: 'facts'}, facts(c).filter((f) => f && f[1]).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      attributesTable(c.attributes || {}))));
}

/** A pattern (JSON Schema) without its `$schema` line, which says nothing to a reader. */
function patternText(pattern) {
  if (typeof pattern !== 'object') return String(pattern);
  const {$schema, ...rest} = pattern; // eslint-disable-line no-unused-vars
  return JSON.stringify(rest);
}

function attributesTable(attributes) {
  const entries = Object.entries(attributes);
  if (!entries.length) return h('p', {class: 'muted'}, 'No attributes.');
  return h('table', {class: 'attributes'},
    h('thead', {}, h('tr', {}, ['Attribute', 'Type', 'Mutable', 'Required', 'Default', 'Pattern', 'Description']
      .map((c) => h('th', {scope: 'col'}, c)))),
    h('tbody', {}, entries.map(([name, def]) => h('tr', {},
      h('th', {scope: 'row'}, h('code', {}, name)), h('td', {}, def.type || 'string'),
      h('td', {}, def.mutable ? 'yes' : 'no'), h('td', {}, def.required ? 'yes' : 'no'),
      h('td', {}, def.default === undefined ? '' : JSON.stringify(def.default)),
      h('td', {class: 'pattern'}, def.pattern ? h('code', {}, patternText(def.pattern)) : ''),
      h('td', {}, def.description || '')))));
}

