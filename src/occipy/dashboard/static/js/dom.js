// Small DOM helpers: elements are built with properties and text nodes, never from HTML strings.

/** h('button', {type: 'button', onclick: f}, 'Stop') -> an element; children may be arrays, strings or nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key.startsWith('aria-') || key === 'role' || key === 'for' || key.startsWith('data-')) {
      el.setAttribute(key, value === true ? 'true' : String(value));
    } else if (key in el) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the content of `el` with these children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let counter = 0;
/** A unique id for label/for pairs. */
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form control: <div><label for=id>text</label><control id=id></div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h('label', {for: control.id}, label), control];
  if (hint) {
    const hintId = uid('hint');
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('small', {id: hintId, class: 'hint'}, hint));
  }
  return h('div', {class: 'field'}, parts);
}

/** The last part of a type id: the term after '#'. */
export function term(typeId) {
  const cut = String(typeId).lastIndexOf('#');
  return cut >= 0 ? typeId.slice(cut + 1) : String(typeId);
}

export function pathOf(url) {
  try {
    const parsed = new URL(url, location.origin);
    return parsed.origin === location.origin ? parsed.pathname + parsed.search : url;
  } catch {
    return url;
  }
}
