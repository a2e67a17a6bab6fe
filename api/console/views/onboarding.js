// Onboarding (POST /api/v1/user/onboarding): the risk profile, the
// experience and the terms accepted. The API does not require it before a
// key or a bot, so the dashboard offers it rather than forcing it.

import { h } from '../dom.js';
import { request } from '../api.js';
import { field, form, checkbox, alertIn } from '../forms.js';
import { heading } from '../ui.js';

/** The version of the terms this console shows. */
export const TERMS_VERSION = '2025-01';

export async function render({ main, app, navigate }) {
  heading(main, 'Onboarding', 'Tell us how you trade, and accept the terms, to finish setting up your account.');
  if (app.me && app.me.onboarded) {
    main.append(
      h('p', { class: 'alert success', role: 'status', testid: 'onboarded' }, 'Your onboarding is complete.'),
      h('p', {}, h('a', { href: '#/dashboard' }, 'Go to the dashboard')),
    );
    return;
  }
  main.append(
    form({
      label: 'Onboarding',
      testid: 'onboarding-form',
      submitLabel: 'Complete onboarding',
      children: [
        field({
          label: 'Risk profile',
          name: 'risk_profile',
          type: 'select',
          value: 'balanced',
          options: [
            ['conservative', 'Conservative'],
            ['balanced', 'Balanced'],
            ['aggressive', 'Aggressive'],
          ],
        }),
        field({
          label: 'Trading experience',
          name: 'experience',
          type: 'select',
          value: 'beginner',
          options: [
            ['beginner', 'Beginner'],
            ['intermediate', 'Intermediate'],
            ['expert', 'Expert'],
          ],
        }),
        checkbox({ label: `I accept the terms of service (version ${TERMS_VERSION})`, name: 'terms_version' }),
      ],
      onSubmit: async (element) => {
        if (!element.elements.namedItem('terms_version').checked) {
          alertIn(element, 'Accept the terms to continue.');
          return;
        }
        const answer = await request('POST', '/user/onboarding', {
          body: {
            risk_profile: element.elements.namedItem('risk_profile').value,
            experience: element.elements.namedItem('experience').value,
            terms_version: TERMS_VERSION,
          },
          idempotent: true,
        });
        await app.refreshMe(answer.position);
        app.announce('Onboarding complete');
        navigate('/dashboard');
      },
    }),
  );
}
