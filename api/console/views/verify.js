// Verify the email with the 6-digit code mailed at sign-up (or resent).

import { h } from '../dom.js';
import { request } from '../api.js';
import { field, form, runAction, valueOf, showError } from '../forms.js';
import { heading, status } from '../ui.js';

export async function render({ main, query, navigate }) {
  heading(main, 'Verify your email');
  if (query.get('registered')) {
    main.append(
      h(
        'p',
        { class: 'alert success', role: 'status', testid: 'registered' },
        'Your account is created. Enter the 6-digit code we mailed you.',
      ),
    );
  } else {
    main.append(h('p', { class: 'lead' }, 'Enter the 6-digit code we mailed you.'));
  }
  const outcome = status('resend-status');
  const resend = h('button', { type: 'button', class: 'secondary', testid: 'resend-code' }, 'Mail me a new code');
  const verifyForm = form({
    label: 'Verify your email',
    testid: 'verify-form',
    submitLabel: 'Verify',
    children: [
      field({ label: 'Email', name: 'email', type: 'email', autocomplete: 'email', required: true, value: query.get('email') || undefined }),
      field({
        label: 'Code',
        name: 'code',
        inputmode: 'numeric',
        autocomplete: 'one-time-code',
        required: true,
        maxlength: 6,
        hint: 'The 6 digits from the email.',
      }),
    ],
    onSubmit: async (element) => {
      const email = valueOf(element, 'email') || '';
      await request('POST', '/auth/verify-email', {
        body: { email, code: valueOf(element, 'code') || '' },
        auth: false,
        idempotent: true,
      });
      navigate(`/login?notice=verified&email=${encodeURIComponent(email)}`);
    },
  });
  resend.addEventListener('click', () =>
    runAction(verifyForm, resend, async () => {
      outcome.clear();
      try {
        await request('POST', '/auth/verify-email/resend', {
          body: { email: valueOf(verifyForm, 'email') || '' },
          auth: false,
        });
        outcome.say('If that email has an unverified account, a new code is on its way.');
      } catch (error) {
        showError(verifyForm, error);
      }
    }),
  );
  main.append(verifyForm, h('div', { class: 'actions' }, resend), outcome.element);
}
