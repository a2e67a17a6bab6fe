// Users (GET /api/v1/admin/users): searched by email or name, filtered by
// role and account state, paged; each opens the user's page.

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf, showError } from '../forms.js';
import { time } from '../format.js';
import { heading, section, table, badge, loading, failure, button } from '../ui.js';

export const ROLES = [
  ['user', 'User'],
  ['support', 'Support'],
  ['admin', 'Admin'],
  ['auditor', 'Auditor'],
];

export async function render({ main, query, signal, navigate }) {
  heading(main, 'Users');
  const search = {
    q: query.get('q') || undefined,
    role: query.get('role') || undefined,
    status: query.get('status') || undefined,
    cursor: query.get('cursor') || undefined,
  };
  const searchForm = form({
    label: 'Search users',
    testid: 'user-search',
    submitLabel: 'Search',
    className: 'inline',
    children: [
      field({ label: 'Email or name contains', name: 'q', type: 'search', value: search.q, autocomplete: 'off', maxlength: 100 }),
      field({ label: 'Role', name: 'role', type: 'select', value: search.role || '', options: [['', 'Any role'], ...ROLES] }),
      field({
        label: 'Account',
        name: 'status',
        type: 'select',
        value: search.status || '',
        options: [
          ['', 'Any'],
          ['active', 'Active'],
          ['disabled', 'Disabled'],
        ],
      }),
    ],
    onSubmit: async (element) => {
      const params = new URLSearchParams();
      for (const name of ['q', 'role', 'status']) {
        const value = valueOf(element, name);
        if (value) params.set(name, value);
      }
      navigate(`/admin/users${params.size ? `?${params}` : ''}`);
    },
  });
  main.append(searchForm);
  const body = section(main, 'Results', { testid: 'user-results' });
  body.append(loading());
  try {
    const page = await request('GET', '/admin/users', { query: { ...search, limit: 50 }, signal });
    const pager = h('div', { class: 'actions' });
    const offset = Number(search.cursor) || 0;
    const go = (cursor) => {
      const params = new URLSearchParams(query);
      if (cursor) params.set('cursor', String(cursor));
      else params.delete('cursor');
      navigate(`/admin/users?${params}`);
    };
    if (offset > 0) pager.append(button('Previous page', () => go(Math.max(0, offset - 50)), { testid: 'previous-page' }));
    if (page.next_cursor) pager.append(button('Next page', () => go(page.next_cursor), { testid: 'next-page' }));
    replace(
      body,
      table({
        caption: 'Users, oldest first',
        testid: 'users-table',
        rowTestid: 'user-row',
        empty: 'No user matches.',
        rows: page.users,
        columns: [
          ['Email', (u) => h('a', { href: `#/admin/users/${encodeURIComponent(u.user_id)}`, testid: 'user-link' }, u.email || '(erased)')],
          ['Name', (u) => u.display_name || '—'],
          ['Role', (u) => badge(u.role, 'user-role')],
          ['Account', (u) => badge(u.disabled_at ? 'disabled' : 'active', 'user-account')],
          ['Verified', (u) => (u.email_verified ? 'yes' : 'no')],
          ['Registered', (u) => time(u.created_at)],
        ],
      }),
      pager,
    );
  } catch (error) {
    if (!signal.aborted) {
      replace(body, failure(error));
      // A refused search parameter is shown next to its control too.
      if (error.field && searchForm.elements.namedItem(error.field)) showError(searchForm, error);
    }
  }
}
