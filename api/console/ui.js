// Pieces the views share: headings, tables, badges, live-update listeners
// that end with their view, and a status message region.

import { h, replace } from './dom.js';
import { messageOf } from './forms.js';
import { words } from './format.js';

/** The view's heading (the router focuses it) and an optional lead. */
export function heading(main, title, lead) {
  main.append(h('h1', { tabindex: '-1' }, title));
  if (lead) main.append(h('p', { class: 'lead' }, lead));
}

/** A titled section appended to `parent`; returns its body element. */
export function section(parent, title, { testid, level = 2, actions } = {}) {
  const body = h('div', { class: 'section-body' });
  const id = `s-${Math.random().toString(36).slice(2, 9)}`;
  parent.append(
    h(
      'section',
      { class: 'card', 'aria-labelledby': id, testid },
      h('div', { class: 'section-head' }, h(`h${level}`, { id }, title), actions || null),
      body,
    ),
  );
  return body;
}

/**
 * A table: `columns` are `[header, cell(row) → node|string, className?]`.
 * The table scrolls sideways on a narrow screen rather than squashing.
 */
export function table({ caption, columns, rows, testid, rowTestid, empty = 'Nothing yet.', rowKey, rowData }) {
  if (!rows.length) return h('p', { class: 'empty', testid: testid ? `${testid}-empty` : null }, empty);
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      { testid },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, columns.map(([title, , className]) => h('th', { scope: 'col', class: className }, title)))),
      h(
        'tbody',
        {},
        rows.map((row) => tableRow(columns, row, rowTestid, rowKey, rowData)),
      ),
    ),
  );
}

/**
 * One row of a `table`'s columns, for adding rows in place: `rowKey(row)`
 * becomes `data-key`, `rowData(row)` more `data-` attributes.
 */
export function tableRow(columns, row, rowTestid, rowKey, rowData) {
  const dataset = { ...(rowKey ? { key: String(rowKey(row)) } : {}), ...(rowData ? rowData(row) : {}) };
  return h(
    'tr',
    { testid: rowTestid, dataset },
    columns.map(([title, cell, className]) => h('td', { class: className, 'data-label': title }, cell(row))),
  );
}

/** A small coloured label for a state (`running`, `test_failed`, …). */
export function badge(state, testid) {
  return h('span', { class: ['badge', `badge-${String(state).replace(/[^a-z_]/g, '')}`], testid }, words(state));
}

/** Subscribes to a live-update type until `signal` aborts. */
export function listen(stream, type, listener, signal) {
  const stop = stream.on(type, listener);
  signal.addEventListener('abort', stop, { once: true });
}

/** A region for an action's outcome: `say(text)`, `fail(error)`, `clear()`. */
export function status(testid) {
  const element = h('div', { class: 'status', role: 'status', testid });
  return {
    element,
    say(text) {
      element.classList.remove('error');
      replace(element, text);
    },
    fail(error) {
      element.classList.add('error');
      replace(element, messageOf(error));
    },
    clear() {
      element.classList.remove('error');
      element.replaceChildren();
    },
  };
}

/** A placeholder while a section loads. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading' }, text);
}

/** An error shown in place of a section's content. */
export function failure(error) {
  return h('div', { class: 'alert error', role: 'alert' }, messageOf(error));
}

/** A definition list of `[term, value]` pairs. */
export function facts(pairs, testid) {
  return h(
    'dl',
    { class: 'facts', testid },
    pairs.map(([term, value, valueTestid]) => [h('dt', {}, term), h('dd', { testid: valueTestid }, value)]),
  );
}

/** A button of a given look, with a click handler. */
export function button(label, onClick, { kind = 'secondary', testid, type = 'button', ...attrs } = {}) {
  return h('button', { type, class: kind, testid, on: { click: onClick }, ...attrs }, label);
}

/** Runs `fn` at most once per `ms`, the last call winning. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A section's own navigation (tabs as links), the current one marked. */
export function subnav(label, items, path) {
  return h(
    'nav',
    { class: 'subnav', 'aria-label': label },
    h(
      'ul',
      {},
      items.map(([href, text, testid]) =>
        h('li', {}, h('a', { href: `#${href}`, 'aria-current': href === path ? 'page' : null, testid }, text)),
      ),
    ),
  );
}

/** The audit section's tabs. */
export const AUDIT_TABS = [
  ['/audit/streams', 'Streams and state', 'audit-tab-streams'],
  ['/audit/verify', 'Verify the log', 'audit-tab-verify'],
  ['/audit/exports', 'Signed exports', 'audit-tab-exports'],
];
