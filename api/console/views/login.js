// Log in: email and password; the access and refresh tokens are kept in
// sessionStorage by api.js, and the console goes where the role starts.

import { h } from '../dom.js';
import { logIn } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { heading } from '../ui.js';

export async function render({ main, query, app }) {
  heading(main, 'Log in');
  const notice = query.get('notice');
  if (notice === 'expired') {
    main.append(h('p', { class: 'alert info', role: 'status', testid: 'session-expired' }, 'Your session ended. Log in again.'));
  } else if (notice === 'verified') {
    main.append(h('p', { class: 'alert success', role: 'status', testid: 'email-verified' }, 'Your email is verified. Log in to continue.'));
  } else if (notice === 'logged-out') {
    main.append(h('p', { class: 'alert info', role: 'status' }, 'You are logged out.'));
  }
  main.append(
    form({
      label: 'Log in',
      testid: 'login-form',
      submitLabel: 'Log in',
      children: [
        field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'username', required: true, value: query.get('email') || undefined }),
        field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
      ],
      onSubmit: async (element) => {
        const email = valueOf(element, 'email') || '';
        const password = element.elements.namedItem('password').value;
        await logIn(email, password);
        element.reset();
        await app.loggedIn(query.get('next'));
      },
    }),
    h(
      'p',
      { class: 'after-form' },
      'New here? ',
      h('a', { href: '#/signup' }, 'Sign up'),
      '. Have a code to enter? ',
      h('a', { href: '#/verify' }, 'Verify your email'),
      '.',
    ),
  );
}
