// The caller's account: profile and notification preferences (PATCH
// /api/v1/user/me), password, and live sessions (each can be ended).

import { h, replace } from '../dom.js';
import { request, segment } from '../api.js';
import { field, form, checkbox, valueOf } from '../forms.js';
import { time, words } from '../format.js';
import { heading, section, table, loading, failure, facts, status, button } from '../ui.js';

export async function render({ main, app, signal }) {
  heading(main, 'Your account');
  const outcome = status('account-status');
  main.append(outcome.element);
  const about = section(main, 'Profile', { testid: 'account-profile' });
  about.append(loading());
  const passwordBody = section(main, 'Password', { testid: 'account-password' });
  const sessionsBody = section(main, 'Sessions', { testid: 'account-sessions' });
  sessionsBody.append(loading());

  const showProfile = (me) => {
    const prefs = me.notifications || {};
    replace(
      about,
      facts([
        ['Email', me.email || '—'],
        ['Role', words(me.role)],
        ['Email verified', me.email_verified ? 'yes' : h('a', { href: `#/verify?email=${encodeURIComponent(me.email || '')}` }, 'no: enter your code')],
        ['Onboarded', me.onboarded ? `yes (${words(me.risk_profile)}, ${words(me.experience)})` : h('a', { href: '#/onboarding' }, 'no: complete onboarding')],
        ['Registered', time(me.created_at)],
      ]),
      form({
        label: 'Change your profile',
        testid: 'profile-form',
        submitLabel: 'Save profile',
        aliases: { 'notifications.in_app': 'in_app' },
        children: [
          field({ label: 'Display name', name: 'display_name', value: me.display_name || undefined, maxlength: 100, autocomplete: 'nickname' }),
          field({ label: 'Time zone', name: 'timezone', value: me.timezone || undefined, placeholder: 'Europe/Paris', hint: 'An IANA time zone name, e.g. UTC or Europe/Paris.', autocomplete: 'off' }),
          h(
            'fieldset',
            {},
            h('legend', {}, 'Email me about'),
            checkbox({ label: 'Fills of my bots', name: 'trade_fills', checked: prefs.trade_fills ?? true }),
            checkbox({ label: 'Bot errors and failed key tests', name: 'bot_errors', checked: prefs.bot_errors ?? true }),
            checkbox({ label: 'Log-ins and password changes', name: 'security', checked: prefs.security ?? true }),
          ),
          field({
            label: 'Notifications in the console',
            name: 'in_app',
            type: 'select',
            value: prefs.in_app || 'all',
            options: [
              ['all', 'All'],
              ['errors_only', 'Errors only'],
              ['none', 'None'],
            ],
          }),
        ],
        onSubmit: async (element) => {
          const body = {
            notifications: {
              trade_fills: element.elements.namedItem('trade_fills').checked,
              bot_errors: element.elements.namedItem('bot_errors').checked,
              security: element.elements.namedItem('security').checked,
              in_app: valueOf(element, 'in_app'),
            },
          };
          const name = valueOf(element, 'display_name');
          const zone = valueOf(element, 'timezone');
          if (name && name !== me.display_name) body.display_name = name;
          if (zone && zone !== me.timezone) body.timezone = zone;
          const answer = await request('PATCH', '/user/me', { body, idempotent: true });
          showProfile(await app.refreshMe(answer.position));
          outcome.say('Profile saved.');
        },
      }),
    );
  };

  passwordBody.append(
    form({
      label: 'Change your password',
      testid: 'password-form',
      submitLabel: 'Change password',
      children: [
        field({ label: 'Current password', name: 'current_password', type: 'password', autocomplete: 'current-password' }),
        field({ label: 'New password', name: 'new_password', type: 'password', autocomplete: 'new-password', hint: '10 to 256 characters. Your other sessions end.' }),
      ],
      onSubmit: async (element) => {
        await request('POST', '/user/me/password', {
          body: {
            current_password: element.elements.namedItem('current_password').value,
            new_password: element.elements.namedItem('new_password').value,
          },
          idempotent: true,
        });
        element.reset();
        outcome.say('Password changed. Your other sessions were ended.');
        await loadSessions();
      },
    }),
  );

  const loadSessions = async () => {
    try {
      const list = await request('GET', '/user/me/sessions', { signal });
      replace(
        sessionsBody,
        table({
          caption: 'Your live sessions, the most recently used first',
          testid: 'sessions-table',
          rowTestid: 'session-row',
          rows: list.sessions,
          columns: [
            ['Client', (s) => [s.client || 'unknown client', s.current ? h('span', { class: 'badge badge-running' }, 'this one') : null]],
            ['Logged in', (s) => time(s.created_at)],
            ['Last used', (s) => time(s.last_used_at)],
            ['Expires', (s) => time(s.expires_at)],
            [
              'End',
              (s) =>
                s.current
                  ? '—'
                  : button('End session', async (event) => {
                      event.currentTarget.disabled = true;
                      try {
                        await request('DELETE', `/user/me/sessions/${segment(s.session_id)}`);
                        outcome.say('Session ended.');
                        await loadSessions();
                      } catch (error) {
                        outcome.fail(error);
                      }
                    }, { kind: 'danger', testid: 'end-session' }),
            ],
          ],
        }),
      );
    } catch (error) {
      if (!signal.aborted) replace(sessionsBody, failure(error));
    }
  };

  try {
    showProfile(await app.refreshMe());
  } catch (error) {
    if (!signal.aborted) replace(about, failure(error));
  }
  await loadSessions();
}
