// One user, for the staff: the profile and account state; admins also
// assign the role, disable and re-enable the account.

import { h, replace } from '../dom.js';
import { currentSession, request, segment } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { time, words } from '../format.js';
import { heading, section, badge, loading, failure, facts, status, button } from '../ui.js';
import { ROLES } from './admin-users.js';

export async function render({ main, params, app, signal }) {
  const userPath = `/admin/users/${segment(params.id)}`;
  heading(main, 'User');
  const title = main.querySelector('h1');
  main.append(h('p', {}, h('a', { href: '#/admin/users' }, '← Users')));
  const outcome = status('user-status-message');
  main.append(outcome.element);
  const profile = section(main, 'Profile', { testid: 'user-profile' });
  profile.append(loading());
  const manage = app.may('users.manage') ? section(main, 'Manage', { testid: 'user-manage' }) : null;

  const load = async (minPosition) => {
    let user;
    try {
      user = await request('GET', userPath, { query: { min_position: minPosition }, signal });
    } catch (error) {
      if (!signal.aborted) replace(profile, failure(error));
      return;
    }
    title.textContent = user.email || 'User (erased)';
    replace(
      profile,
      facts([
        ['Email', user.email || '(erased)', 'user-email'],
        ['Display name', user.display_name || '—'],
        ['Role', badge(user.role, 'user-role'), 'user-role-value'],
        ['Account', badge(user.disabled_at ? 'disabled' : 'active', 'user-account'), 'user-account-value'],
        ['Email verified', user.email_verified ? 'yes' : 'no'],
        ['Onboarded', user.onboarded ? `yes (${words(user.risk_profile)}, ${words(user.experience)})` : 'no'],
        ['Registered', time(user.created_at)],
        ['Last log-in', time(user.last_login_at)],
        ['Disabled', user.disabled_at ? time(user.disabled_at) : '—'],
        ['User id', h('code', {}, user.user_id)],
      ]),
    );
    if (manage) replace(manage, ...manageControls(user, load, outcome));
  };
  await load();
}

function manageControls(user, load, outcome) {
  const self = currentSession()?.user_id === user.user_id;
  const userPath = `/admin/users/${segment(user.user_id)}`;
  const roleForm = form({
    label: 'Assign a role',
    testid: 'role-form',
    submitLabel: 'Assign role',
    className: 'inline',
    children: [field({ label: 'New role', name: 'role', type: 'select', value: user.role, options: ROLES })],
    onSubmit: async (element) => {
      const role = valueOf(element, 'role');
      const answer = await request('POST', `${userPath}/role`, { body: { role }, idempotent: true });
      outcome.say(`The role is now ${answer.role}. The user's sessions were ended.`);
      await load(answer.position);
    },
  });
  let account;
  if (user.disabled_at) {
    const enable = button('Enable the account', async () => {
      enable.disabled = true;
      outcome.clear();
      try {
        const answer = await request('POST', `${userPath}/enable`, { idempotent: true });
        outcome.say('The account is enabled.');
        await load(answer.position);
      } catch (error) {
        outcome.fail(error);
        enable.disabled = false;
      }
    }, { kind: 'primary', testid: 'enable-user' });
    account = h('div', { class: 'actions' }, enable);
  } else {
    account = form({
      label: 'Disable the account',
      testid: 'disable-form',
      submitLabel: 'Disable the account',
      className: 'inline danger-form',
      children: [
        field({
          label: 'Reason (optional)',
          name: 'reason',
          maxlength: 500,
          hint: self ? 'You cannot disable your own account.' : 'Recorded in the log. The user’s sessions end and running bots stop.',
        }),
      ],
      onSubmit: async (element) => {
        const reason = valueOf(element, 'reason');
        const answer = await request('POST', `${userPath}/disable`, { body: reason ? { reason } : {}, idempotent: true });
        outcome.say('The account is disabled.');
        await load(answer.position);
      },
    });
  }
  return [h('h3', {}, 'Role'), roleForm, h('h3', {}, 'Account access'), account];
}
