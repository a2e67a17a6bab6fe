// Exchange (Kraken) keys: connect, test, relabel or replace, disconnect.
// The secret is typed once into a password field, sent, and cleared from
// the form at once; the API never returns it, so it is never shown again.

import { h, replace } from '../dom.js';
import { request, segment } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { time, words } from '../format.js';
import { heading, section, table, badge, loading, failure, status, button } from '../ui.js';

export async function render({ main, signal }) {
  heading(main, 'Exchange keys', 'Connect a Kraken API key your bots trade with. A key that may withdraw funds is refused.');
  const listBody = section(main, 'Your keys', { testid: 'keys' });
  const outcome = status('key-status-message');
  listBody.before(outcome.element);
  listBody.append(loading());

  const load = async (minPosition) => {
    try {
      const page = await request('GET', '/kraken/keys', { query: { min_position: minPosition, limit: 100 }, signal });
      replace(listBody, keysTable(page.keys, { reload: load, outcome }));
    } catch (error) {
      if (!signal.aborted) replace(listBody, failure(error));
    }
  };

  const connectBody = section(main, 'Connect a key', { testid: 'connect-key' });
  connectBody.append(
    form({
      label: 'Connect a Kraken key',
      testid: 'connect-form',
      submitLabel: 'Connect key',
      children: [
        field({ label: 'Label (optional)', name: 'label', maxlength: 64, autocomplete: 'off' }),
        field({ label: 'API key', name: 'api_key', autocomplete: 'off', spellcheck: 'false', required: true }),
        field({
          label: 'API secret',
          name: 'api_secret',
          type: 'password',
          autocomplete: 'new-password',
          required: true,
          hint: 'Sent once and stored encrypted; it is never shown again.',
        }),
      ],
      onSubmit: async (element) => {
        const secret = element.elements.namedItem('api_secret');
        const body = { api_key: valueOf(element, 'api_key') || '', api_secret: secret.value };
        const label = valueOf(element, 'label');
        if (label) body.label = label;
        try {
          const answer = await request('POST', '/kraken/connect', { body, idempotent: true });
          element.reset();
          outcome.say('Key connected. Test it before a bot uses it.');
          await load(answer.position);
        } finally {
          // Whatever the answer, the secret does not stay in the page.
          secret.value = '';
          body.api_secret = '';
        }
      },
    }),
  );
  await load();
}

function keysTable(keys, context) {
  return table({
    caption: 'Connected keys',
    testid: 'keys-table',
    rowTestid: 'key-row',
    empty: 'No key connected yet.',
    rows: keys,
    columns: [
      ['Label', (k) => k.label || '(no label)'],
      ['Fingerprint', (k) => h('code', {}, k.fingerprint)],
      ['Status', (k) => [badge(k.status, 'key-status'), k.last_test_failure ? h('p', { class: 'small' }, k.last_test_failure) : null]],
      ['Permissions', (k) => (Array.isArray(k.permissions) ? k.permissions.map(words).join(', ') : '')],
      ['Connected', (k) => time(k.connected_at)],
      ['Actions', (k) => keyActions(k, context)],
    ],
  });
}

function keyActions(key, { reload, outcome }) {
  const id = segment(key.key_id);
  const test = button('Test', async () => {
    outcome.clear();
    test.disabled = true;
    try {
      const answer = await request('POST', `/kraken/keys/${id}/test`, { idempotent: true });
      if (answer.status === 'tested') outcome.say(`The key ${key.label || key.fingerprint} passed its test.`);
      else outcome.fail(new Error(`The key failed its test: ${answer.reason || 'no reason given'}`));
      await reload(answer.position);
    } catch (error) {
      outcome.fail(error);
    } finally {
      test.disabled = false;
    }
  }, { testid: 'test-key' });
  const disconnect = button('Disconnect', async () => {
    if (!window.confirm(`Disconnect the key ${key.label || key.fingerprint}? Its stored secret is destroyed.`)) return;
    outcome.clear();
    disconnect.disabled = true;
    try {
      const answer = await request('DELETE', `/kraken/keys/${id}`, { idempotent: true });
      outcome.say('Key disconnected.');
      await reload(answer.position);
    } catch (error) {
      outcome.fail(error);
      disconnect.disabled = false;
    }
  }, { kind: 'danger', testid: 'disconnect-key' });
  const update = form({
    label: `Change the key ${key.label || key.fingerprint}`,
    testid: 'update-key-form',
    submitLabel: 'Save changes',
    children: [
      field({ label: 'New label', name: 'label', maxlength: 64, value: key.label || undefined, autocomplete: 'off' }),
      field({ label: 'New API key (optional)', name: 'api_key', autocomplete: 'off', spellcheck: 'false' }),
      field({ label: 'New API secret (with a new API key)', name: 'api_secret', type: 'password', autocomplete: 'new-password' }),
    ],
    onSubmit: async (element) => {
      const secret = element.elements.namedItem('api_secret');
      const body = {};
      const label = valueOf(element, 'label');
      const apiKey = valueOf(element, 'api_key');
      if (label && label !== key.label) body.label = label;
      if (apiKey !== undefined) body.api_key = apiKey;
      if (secret.value) body.api_secret = secret.value;
      secret.value = '';
      if (!Object.keys(body).length) {
        outcome.say('Nothing to change.');
        return;
      }
      const answer = await request('PATCH', `/kraken/keys/${id}`, { body, idempotent: true });
      body.api_secret = '';
      outcome.say('Key updated.');
      await reload(answer.position);
    },
  });
  return h(
    'div',
    { class: 'row-actions' },
    test,
    disconnect,
    h('details', { class: 'inline-form' }, h('summary', {}, 'Change'), update),
  );
}

