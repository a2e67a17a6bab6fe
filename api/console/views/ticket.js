// One support ticket and its conversation: reply, close, reopen; the staff
// (at /tickets/<id>) also assign it.

import { h, replace } from '../dom.js';
import { currentSession, request, segment } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { short, time } from '../format.js';
import { heading, section, badge, loading, failure, facts, status, button, listen } from '../ui.js';

export async function render({ main, params, query, path, app, signal }) {
  const staff = path.startsWith('/tickets/');
  const ticketPath = `/support/tickets/${segment(params.id)}`;
  heading(main, 'Support ticket');
  const title = main.querySelector('h1');
  main.append(h('p', {}, h('a', { href: staff ? '#/tickets' : '#/support' }, staff ? '← All tickets' : '← Your tickets')));
  const outcome = status('ticket-status-message');
  main.append(outcome.element);
  const summary = section(main, 'About this ticket', { testid: 'ticket-summary' });
  const conversation = section(main, 'Conversation', { testid: 'ticket-messages' });
  const replyBody = section(main, 'Reply', { testid: 'ticket-reply' });
  summary.append(loading());

  const me = currentSession()?.user_id;
  const author = (m, ticket) => {
    if (m.author_id === me) return 'You';
    if (m.from_staff) return 'Support staff';
    return m.author_id === ticket.owner_id ? 'The customer' : short(m.author_id);
  };

  const load = async (minPosition) => {
    let ticket;
    try {
      ticket = await request('GET', ticketPath, { query: { min_position: minPosition }, signal });
    } catch (error) {
      if (!signal.aborted) replace(summary, failure(error));
      return;
    }
    title.textContent = ticket.subject || 'Support ticket (erased)';
    document.title = `${title.textContent} · Muckard console`;
    const owner = staff && app.may('users.read')
      ? h('a', { href: `#/admin/users/${encodeURIComponent(ticket.owner_id)}` }, short(ticket.owner_id))
      : h('code', {}, short(ticket.owner_id));
    replace(
      summary,
      facts([
        ['Status', badge(ticket.status, 'ticket-state')],
        ['Opened', time(ticket.opened_at)],
        ['Owner', ticket.owner_id === me ? 'You' : owner],
        ['Assigned to', ticket.assignee_id ? (ticket.assignee_id === me ? 'You' : h('code', {}, short(ticket.assignee_id))) : 'Nobody yet', 'ticket-assignee'],
        ['Replies', String(ticket.replies)],
      ]),
      h('div', { class: 'actions' }, actions(ticket)),
    );
    replace(
      conversation,
      ticket.messages.length
        ? h(
            'ol',
            { class: 'messages', testid: 'message-list' },
            ticket.messages.map((m) =>
              h(
                'li',
                { class: ['message', m.from_staff ? 'from-staff' : 'from-owner'], testid: 'message' },
                h('p', { class: 'message-head' }, h('strong', {}, author(m, ticket)), ' · ', h('span', { class: 'small' }, time(m.written_at))),
                h('p', { class: 'message-body' }, m.body ?? '(erased)'),
              ),
            ),
          )
        : h('p', { class: 'empty' }, 'No messages.'),
    );
    replace(
      replyBody,
      ticket.status === 'open'
        ? form({
            label: 'Reply to the ticket',
            testid: 'reply-form',
            submitLabel: 'Send reply',
            children: [field({ label: 'Your reply', name: 'body', type: 'textarea', maxlength: 10000, required: true, rows: 5 })],
            onSubmit: async (element) => {
              const answer = await request('POST', `${ticketPath}/replies`, {
                body: { body: element.elements.namedItem('body').value },
                idempotent: true,
              });
              element.reset();
              outcome.say('Reply sent.');
              await load(answer.position);
            },
          })
        : h('p', { class: 'empty' }, 'The ticket is closed. Reopen it to reply.'),
    );
  };

  const command = (label, suffix, body, testid, kind = 'secondary') => {
    const element = button(label, async () => {
      element.disabled = true;
      outcome.clear();
      try {
        const answer = await request('POST', `${ticketPath}/${suffix}`, { body, idempotent: true });
        outcome.say(`${label}: done.`);
        await load(answer.position);
      } catch (error) {
        outcome.fail(error);
        element.disabled = false;
      }
    }, { testid, kind });
    return element;
  };
  const actions = (ticket) => [
    ticket.status === 'open' ? command('Close ticket', 'close', undefined, 'close-ticket') : command('Reopen ticket', 'reopen', undefined, 'reopen-ticket'),
    staff && app.may('tickets.staff') && ticket.status === 'open' && ticket.assignee_id !== me
      ? command('Assign to me', 'assign', { assignee_id: me }, 'assign-to-me')
      : null,
    staff && app.may('tickets.staff') && ticket.status === 'open' ? assignForm(ticket) : null,
  ];
  // The staff who may be assigned (support and admins), when the caller may list users.
  let staffMembers = null;
  const loadStaff = async () => {
    if (staffMembers || !app.may('users.read')) return staffMembers;
    const pages = await Promise.all(
      ['support', 'admin'].map((role) => request('GET', '/admin/users', { query: { role, status: 'active', limit: 100 }, signal })),
    );
    staffMembers = pages.flatMap((page) => page.users).filter((u) => u.user_id !== me);
    return staffMembers;
  };
  const assigneeField = () =>
    staffMembers && staffMembers.length
      ? field({
          label: 'Staff member',
          name: 'assignee_id',
          type: 'select',
          options: staffMembers.map((u) => [u.user_id, `${u.display_name || u.email || u.user_id} (${u.role})`]),
        })
      : field({ label: 'Staff member’s user id', name: 'assignee_id', autocomplete: 'off', spellcheck: 'false' });
  const assignForm = () =>
    h(
      'details',
      { class: 'inline-form' },
      h('summary', {}, 'Assign to someone else'),
      form({
        label: 'Assign the ticket',
        testid: 'assign-form',
        submitLabel: 'Assign',
        children: [assigneeField()],
        onSubmit: async (element) => {
          const answer = await request('POST', `${ticketPath}/assign`, {
            body: { assignee_id: valueOf(element, 'assignee_id') || '' },
            idempotent: true,
          });
          outcome.say('Assigned.');
          await load(answer.position);
        },
      }),
    );

  // A support reply arrives as a notification naming the ticket.
  listen(app.stream, 'notification', (update) => {
    if (update.data && update.data.ticket_id === params.id) load(update.id);
  }, signal);
  if (staff) await loadStaff().catch(() => null);
  await load(query.get('since') || undefined);
}
