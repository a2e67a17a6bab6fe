// Hash routing (`/app/#/bots/<id>`), so the server serves one page and
// needs no fallback. Each route names a view module's `render(context)`;
// the previous view's AbortSignal fires when another route renders, which
// cancels its requests and its live-update listeners.

import { h, replace } from './dom.js';
import { messageOf } from './forms.js';

/** `#/bots/x?tab=trades` → `{path: '/bots/x', query: URLSearchParams}`. */
export function parseHash(hash) {
  const text = hash.startsWith('#') ? hash.slice(1) : hash;
  const [path, search = ''] = text.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

function compile(pattern) {
  const names = [];
  const source = pattern.replace(/:([a-z_]+)/g, (_, name) => {
    names.push(name);
    return '([^/]+)';
  });
  return { regex: new RegExp(`^${source}$`), names };
}

export class Router {
  /**
   * `routes`: `[{path, title, render, access}]`; `decide(route, context)`
   * returns a path to go to instead, or null to render.
   */
  constructor({ main, routes, decide, context, onRendered }) {
    this.main = main;
    this.routes = routes.map((route) => ({ ...route, ...compile(route.path) }));
    this.decide = decide;
    this.context = context;
    this.onRendered = onRendered || (() => {});
    this.controller = null;
    this.rendered = false;
  }

  start() {
    window.addEventListener('hashchange', () => this.render());
    this.render();
  }

  /** Goes to `path` (with an optional query string), rendering it even if it is the current one. */
  navigate(path) {
    if (location.hash === `#${path}`) this.render();
    else location.hash = path;
  }

  /** The path now shown. */
  current() {
    return parseHash(location.hash);
  }

  match(path) {
    for (const route of this.routes) {
      const found = route.regex.exec(path);
      if (found) {
        const params = {};
        route.names.forEach((name, i) => {
          params[name] = decodeURIComponent(found[i + 1]);
        });
        return { route, params };
      }
    }
    return null;
  }

  async render() {
    // The skip link's `#main` and other in-page anchors are not routes.
    if (location.hash && !location.hash.startsWith('#/')) return;
    const { path, query } = this.current();
    const found = this.match(path);
    if (!found) {
      this.show('Not found', [h('p', {}, 'There is no such page here.'), h('p', {}, h('a', { href: '#/' }, 'Home'))]);
      return;
    }
    const redirect = this.decide(found.route, path);
    if (redirect && redirect !== path) {
      this.navigate(redirect);
      return;
    }
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    const { signal } = this.controller;
    document.title = `${found.route.title} · Muckard console`;
    this.main.replaceChildren();
    this.main.setAttribute('aria-busy', 'true');
    const rendering = found.route.render({
      ...this.context,
      main: this.main,
      params: found.params,
      query,
      signal,
      path,
      navigate: (to) => this.navigate(to),
    });
    // The first view of a page load leaves the focus where a browser puts
    // it, so the skip link is the first Tab stop; later views move the
    // focus to their heading, as a page load would put the reader there.
    if (this.rendered) this.focusHeading();
    this.rendered = true;
    this.onRendered(found.route, path);
    try {
      await rendering;
    } catch (error) {
      if (signal.aborted) return;
      this.main.append(
        h('div', { class: 'alert error', role: 'alert', testid: 'view-error' }, messageOf(error)),
      );
    } finally {
      if (!signal.aborted) this.main.removeAttribute('aria-busy');
    }
  }

  show(title, children) {
    if (this.controller) this.controller.abort();
    this.controller = null;
    document.title = `${title} · Muckard console`;
    replace(this.main, h('h1', { tabindex: '-1' }, title), children);
    this.focusHeading();
  }

  focusHeading() {
    const heading = this.main.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
  }
}
