// Form controls from OCCI attribute definitions (GFD.226 §3.5.1: type, pattern, default, required).

import {h} from './dom.js';

/** A control for one attribute or action parameter; `value` pre-fills it. */
export function control(name, def = {}, value) {
  const type = def.type || 'string';
  const pattern = typeof def.pattern === 'object' && def.pattern ? def.pattern : {};
  const choices = Array.isArray(pattern.enum) ? pattern.enum : null;
  let el;
  if (choices) {
    el = h('select', {name},
      def.required ? null : h('option', {value: ''}, '(not set)'),
      choices.map((choice) => h('option', {value: String(choice)}, String(choice))));
    if (value !== undefined) el.value = String(value);
    else if (def.default !== undefined) el.value = String(def.default);
  } else if (type === 'boolean') {
    el = h('select', {name},
      h('option', {value: ''}, '(not set)'), h('option', {value: 'true'}, 'true'), h('option', {value: 'false'}, 'false'));
    if (value !== undefined) el.value = String(value);
  } else if (type === 'number') {
    const integer = pattern.type === 'integer';
    el = h('input', {name, type: 'number', step: integer ? '1' : 'any', inputMode: integer ? 'numeric' : 'decimal'});
    if (pattern.minimum !== undefined) el.min = String(pattern.minimum);
    if (pattern.maximum !== undefined) el.max = String(pattern.maximum);
    if (value !== undefined) el.value = String(value);
    else if (def.default !== undefined) el.placeholder = String(def.default);
  } else if (type === 'array' || type === 'object') {
    el = h('textarea', {name, rows: 3, spellcheck: false});
    if (value !== undefined) el.value = JSON.stringify(value, null, 1);
    el.placeholder = type === 'array' ? '[ ... ] (JSON)' : '{ ... } (JSON)';
  } else {
    el = h('input', {name, type: 'text', autocomplete: 'off', spellcheck: false});
    if (value !== undefined) el.value = String(value);
    else if (def.default !== undefined) el.placeholder = String(def.default);
  }
  el.dataset.occiType = type;
  el.dataset.integer = pattern.type === 'integer' ? '1' : '';
  if (def.required) el.required = true;
  return el;
}

/** The value a control holds, typed for JSON; undefined when empty. Throws on bad input. */
export function readValue(el) {
  const raw = el.value;
  if (raw === '' || raw === undefined) return undefined;
  switch (el.dataset.occiType) {
    case 'number': {
      const number = Number(raw);
      if (!Number.isFinite(number)) throw new Error(`${el.name}: "${raw}" is not a number`);
      return number;
    }
    case 'boolean':
      return raw === 'true';
    case 'array':
    case 'object':
      try {
        return JSON.parse(raw);
      } catch {
        throw new Error(`${el.name}: not valid JSON`);
      }
    default:
      return raw;
  }
}

/** A short description of a definition: type, flags, default, allowed values. */
export function describe(def = {}) {
  const parts = [def.type || 'string'];
  if (def.required) parts.push('required');
  parts.push(def.mutable ? 'mutable' : 'immutable');
  const pattern = typeof def.pattern === 'object' && def.pattern ? def.pattern : null;
  if (pattern?.enum) parts.push('one of ' + pattern.enum.join(', '));
  if (def.default !== undefined) parts.push('default ' + JSON.stringify(def.default));
  return parts.join('; ');
}
