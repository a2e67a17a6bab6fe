// The staff's view of every support ticket, filtered and paged.

import { h, replace } from '../dom.js';
import { currentSession, request } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { heading, section, loading, failure, button } from '../ui.js';
import { ticketsTable } from './support.js';

export async function render({ main, signal, query, navigate }) {
  heading(main, 'Support tickets');
  const filters = {
    status: query.has('status') ? query.get('status') || undefined : 'open',
    assignee_id: query.get('assignee_id') || undefined,
  };
  const me = currentSession()?.user_id;
  const filterForm = form({
    label: 'Filter tickets',
    testid: 'tickets-filter',
    submitLabel: 'Filter',
    className: 'inline',
    children: [
      field({
        label: 'Status',
        name: 'status',
        type: 'select',
        value: filters.status || '',
        options: [
          ['open', 'Open'],
          ['closed', 'Closed'],
          ['', 'Any'],
        ],
      }),
      field({
        label: 'Assigned to',
        name: 'assignee_id',
        type: 'select',
        value: filters.assignee_id === me ? me : '',
        options: [
          ['', 'Anyone'],
          [me, 'Me'],
        ],
      }),
    ],
    onSubmit: async (element) => {
      const params = new URLSearchParams();
      params.set('status', valueOf(element, 'status') || '');
      const assignee = valueOf(element, 'assignee_id');
      if (assignee) params.set('assignee_id', assignee);
      navigate(`/tickets?${params}`);
    },
  });
  main.append(filterForm);
  const body = section(main, 'Tickets', { testid: 'staff-tickets' });
  body.append(loading());
  const offset = Number(query.get('cursor')) || 0;
  try {
    const page = await request('GET', '/support/tickets', {
      query: { ...filters, limit: 50, cursor: offset || undefined },
      signal,
    });
    const pager = h('div', { class: 'actions' });
    if (offset > 0) {
      pager.append(button('Previous page', () => go(Math.max(0, offset - 50))));
    }
    if (page.next_cursor) pager.append(button('Next page', () => go(Number(page.next_cursor)), { testid: 'next-page' }));
    replace(body, ticketsTable(page.tickets, '/tickets', { staff: true }), pager);
  } catch (error) {
    if (!signal.aborted) replace(body, failure(error));
  }
  function go(to) {
    const params = new URLSearchParams(query);
    if (to) params.set('cursor', String(to));
    else params.delete('cursor');
    navigate(`/tickets?${params}`);
  }

}
