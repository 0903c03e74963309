// What the query interface (/-/) says: kinds, mixins and actions, and helpers over them.

import {get} from './api.js';

export const CORE = 'http://schemas.ogf.org/occi/core#';
export const INFRA = 'http://schemas.ogf.org/occi/infrastructure#';
export const ENTITY = CORE + 'entity';
export const RESOURCE = CORE + 'resource';
export const LINK = CORE + 'link';
export const OS_TPL = INFRA + 'os_tpl';
export const RESOURCE_TPL = INFRA + 'resource_tpl';

export const typeId = (category) => category.scheme + category.term;

export class Model {
  constructor(document) {
    this.kinds = new Map();
    this.mixins = new Map();
    this.actions = new Map();
    for (const kind of document.kinds || []) this.kinds.set(typeId(kind), kind);
    for (const mixin of document.mixins || []) this.mixins.set(typeId(mixin), mixin);
    for (const action of document.actions || []) this.actions.set(typeId(action), action);
  }

  static async load() {
    const {data} = await get('/-/');
    return new Model(data || {});
  }

  /** The kind and its parents, own kind first. */
  ancestors(kindId) {
    const chain = [];
    let current = this.kinds.get(kindId);
    while (current && !chain.includes(typeId(current))) {
      chain.push(typeId(current));
      current = current.parent ? this.kinds.get(current.parent) : undefined;
    }
    return chain;
  }

  isLinkKind(kindId) {
    return this.ancestors(kindId).includes(LINK);
  }

  /** Kinds bound to a location (everything but core#entity), in the server's order. */
  servedKinds() {
    return [...this.kinds.values()].filter((kind) => kind.location);
  }

  kindByLocation(path) {
    return [...this.kinds.values()].find((kind) => kind.location === path);
  }

  /** The kind whose location is the parent of an entity path. */
  kindOfPath(path) {
    const cut = path.lastIndexOf('/');
    return this.kindByLocation(path.slice(0, cut + 1));
  }

  /** The name of the kind's state attribute (occi.compute.state, ...), or null. */
  stateAttribute(kindId) {
    for (const id of this.ancestors(kindId)) {
      const attrs = Object.keys(this.kinds.get(id)?.attributes || {});
      const found = attrs.find((name) => /\.state$/.test(name) && !name.startsWith('occi.core.'));
      if (found) return found;
    }
    return null;
  }

  /** Mixins and everything they depend on. */
  closure(mixinIds) {
    const seen = [];
    const walk = (id) => {
      if (seen.includes(id)) return;
      seen.push(id);
      for (const dep of this.mixins.get(id)?.depends || []) walk(dep);
    };
    mixinIds.forEach(walk);
    return seen;
  }

  /** Attribute definitions of a kind with these mixins (the kind's first, then the mixins'). */
  attributeDefs(kindId, mixinIds = []) {
    const defs = {};
    for (const id of [...this.ancestors(kindId)].reverse()) Object.assign(defs, this.kinds.get(id)?.attributes || {});
    for (const id of this.closure(mixinIds)) {
      for (const [name, def] of Object.entries(this.mixins.get(id)?.attributes || {})) {
        defs[name] = {...(defs[name] || {}), ...def};
      }
    }
    return defs;
  }

  /** Mixins that may be associated with an entity of this kind (their `applies` allows it). */
  applicableMixins(kindId) {
    const chain = this.ancestors(kindId);
    return [...this.mixins.values()].filter((mixin) => {
      const applies = mixin.applies || [];
      return applies.length === 0 || applies.some((id) => chain.includes(id));
    });
  }

  /** Templates: the mixins that depend on `parent` (os_tpl or resource_tpl). */
  templates(parent) {
    return [...this.mixins.values()].filter((mixin) => (mixin.depends || []).includes(parent));
  }

  action(actionId) {
    return this.actions.get(actionId) || {term: actionId.split('#').pop(), scheme: '', attributes: {}};
  }
}
