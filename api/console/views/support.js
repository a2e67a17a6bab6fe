// A user's own support tickets: the list and the form that opens one.

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { time } from '../format.js';
import { heading, section, table, badge, loading, failure } from '../ui.js';

export async function render({ main, signal, navigate }) {
  heading(main, 'Support', 'Ask the support staff a question; their replies arrive here and as notifications.');
  const listBody = section(main, 'Your tickets', { testid: 'my-tickets' });
  listBody.append(loading());
  const openBody = section(main, 'Open a ticket', { testid: 'open-ticket' });
  openBody.append(
    form({
      label: 'Open a support ticket',
      testid: 'open-ticket-form',
      submitLabel: 'Open ticket',
      children: [
        field({ label: 'Subject', name: 'subject', maxlength: 200, required: true }),
        field({ label: 'Message', name: 'body', type: 'textarea', maxlength: 10000, required: true, rows: 6 }),
      ],
      onSubmit: async (element) => {
        const answer = await request('POST', '/support/tickets', {
          body: { subject: valueOf(element, 'subject') || '', body: element.elements.namedItem('body').value },
          idempotent: true,
        });
        navigate(`/support/${encodeURIComponent(answer.ticket_id)}?since=${encodeURIComponent(answer.position)}`);
      },
    }),
  );
  try {
    const page = await request('GET', '/support/tickets', { query: { limit: 100 }, signal });
    replace(listBody, ticketsTable(page.tickets, '/support'));
  } catch (error) {
    if (!signal.aborted) replace(listBody, failure(error));
  }
}

/** Tickets as a table whose subjects link to `${base}/<id>`. */
export function ticketsTable(tickets, base, { staff = false } = {}) {
  return table({
    caption: 'Support tickets',
    testid: 'tickets-table',
    rowTestid: 'ticket-row',
    empty: 'No tickets.',
    rows: tickets,
    columns: [
      ['Subject', (t) => h('a', { href: `#${base}/${encodeURIComponent(t.ticket_id)}`, testid: 'ticket-link' }, t.subject || '(erased)')],
      ['Status', (t) => badge(t.status, 'ticket-status')],
      ...(staff ? [['Assignee', (t) => (t.assignee_id ? h('code', {}, t.assignee_id.slice(0, 8)) : 'nobody')]] : []),
      ['Replies', (t) => String(t.replies), 'num'],
      ['Opened', (t) => time(t.opened_at)],
      ['Last message', (t) => time(t.last_message_at)],
    ],
  });
}
