// Sign up (POST /api/v1/auth/register): the form posts what the user typed
// as it is (the API decides what is valid and names the field it refuses),
// then asks for the code mailed to the address.

import { h } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { heading } from '../ui.js';

export async function render({ main, navigate }) {
  heading(main, 'Sign up', 'Create a Muckard account. We mail you a code to verify your email.');
  main.append(
    form({
      label: 'Sign up',
      testid: 'signup-form',
      submitLabel: 'Sign up',
      children: [
        field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true }),
        field({
          label: 'Password',
          name: 'password',
          type: 'password',
          autocomplete: 'new-password',
          required: true,
          hint: '10 to 256 characters.',
        }),
        field({ label: 'Display name (optional)', name: 'display_name', autocomplete: 'nickname', maxlength: 100 }),
      ],
      onSubmit: async (element) => {
        const email = valueOf(element, 'email') || '';
        const body = { email, password: element.elements.namedItem('password').value };
        const displayName = valueOf(element, 'display_name');
        if (displayName) body.display_name = displayName;
        await request('POST', '/auth/register', { body, auth: false, idempotent: true });
        element.reset();
        navigate(`/verify?email=${encodeURIComponent(email)}&registered=1`);
      },
    }),
    h('p', { class: 'after-form' }, 'Already registered? ', h('a', { href: '#/login' }, 'Log in'), '.'),
  );
}
