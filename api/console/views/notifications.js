// The caller's notifications, newest first, with the unread count; mark
// one or all read. New ones arrive from the event stream.

import { h, replace } from '../dom.js';
import { request, segment } from '../api.js';
import { time, words } from '../format.js';
import { heading, section, loading, failure, listen, status, button, debounce } from '../ui.js';

export async function render({ main, app, signal }) {
  heading(main, 'Notifications');
  const outcome = status('notifications-status');
  const markAll = button('Mark all read', async () => {
    markAll.disabled = true;
    outcome.clear();
    try {
      const answer = await request('POST', '/notifications/read-all', { idempotent: true });
      outcome.say(answer.marked ? `${answer.marked} marked read.` : 'Nothing was unread.');
      await load(answer.position || undefined);
    } catch (error) {
      outcome.fail(error);
    } finally {
      markAll.disabled = false;
    }
  }, { testid: 'mark-all-read' });
  const body = section(main, 'Your notifications', { testid: 'notifications', actions: markAll });
  body.before(outcome.element);
  body.append(loading());
  let items = [];
  let cursor = null;
  const list = h('ul', { class: 'notification-list', testid: 'notification-list' });
  const more = button('Older notifications', () => load(undefined, true), { testid: 'older-notifications' });

  const item = (n) => {
    const read = button('Mark read', async () => {
      read.disabled = true;
      try {
        await request('POST', `/notifications/${segment(n.notification_id)}/read`, { idempotent: true });
        n.read_at = new Date().toISOString();
        element.replaceWith(item(n));
        await app.refreshUnread();
      } catch (error) {
        outcome.fail(error);
        read.disabled = false;
      }
    }, { testid: 'mark-read' });
    const link = n.bot_id
      ? h('a', { href: `#/bots/${encodeURIComponent(n.bot_id)}` }, 'Open the bot')
      : n.ticket_id
        ? h('a', { href: `#/support/${encodeURIComponent(n.ticket_id)}` }, 'Open the ticket')
        : n.key_id
          ? h('a', { href: '#/keys' }, 'Open the keys')
          : null;
    const element = h(
      'li',
      { class: ['notification', n.read_at ? 'read' : 'unread'], testid: 'notification', dataset: { id: n.notification_id } },
      h('p', { class: 'notification-head' }, h('strong', {}, words(n.kind)), ' · ', h('span', { class: 'small' }, time(n.created_at)), n.read_at ? null : h('span', { class: 'badge badge-unread' }, 'unread')),
      h('p', { class: 'notification-message' }, n.message),
      h('div', { class: 'row-actions' }, link, n.read_at ? null : read),
    );
    return element;
  };
  const draw = () => {
    replace(list, items.map(item));
    replace(body, items.length ? list : h('p', { class: 'empty', testid: 'notifications-empty' }, 'No notifications.'), cursor ? more : null);
  };
  async function load(minPosition, older = false) {
    try {
      const page = await request('GET', '/notifications', {
        query: { min_position: minPosition, limit: 50, cursor: older ? cursor : undefined },
        signal,
      });
      items = older ? [...items, ...page.notifications] : page.notifications;
      cursor = page.next_cursor;
      app.setUnread(page.unread);
      draw();
    } catch (error) {
      if (!signal.aborted) replace(body, failure(error));
    }
  }
  const reload = debounce((update) => load(update && update.id), 200);
  listen(app.stream, 'notification', reload, signal);
  listen(app.stream, 'notification_read', reload, signal);
  await load();
}
