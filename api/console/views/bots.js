// The caller's bots, their states kept live, and the form that configures
// a new one (POST /api/v1/bot).

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf, alertIn } from '../forms.js';
import { time, short } from '../format.js';
import { heading, section, table, badge, loading, failure, listen, debounce } from '../ui.js';

/** Pairs offered in the pair field; any BASE/QUOTE the exchange knows works. */
export const COMMON_PAIRS = ['XBT/USD', 'ETH/USD', 'XBT/EUR', 'ETH/EUR', 'SOL/USD'];

export async function render({ main, app, signal, navigate }) {
  heading(main, 'Bots');
  const listBody = section(main, app.may('trading.read_all') ? 'All bots' : 'Your bots', { testid: 'bots' });
  listBody.append(loading());

  const load = async (minPosition) => {
    try {
      const page = await request('GET', '/bot', { query: { min_position: minPosition, limit: 100 }, signal });
      replace(listBody, botsTable(page.bots));
    } catch (error) {
      if (!signal.aborted) replace(listBody, failure(error));
    }
  };
  const reload = debounce((update) => load(update && update.id), 300);
  listen(app.stream, 'bot_status', (update) => {
    const row = listBody.querySelector(`tr[data-key="${CSS.escape(String(update.data?.bot_id))}"]`);
    if (row && update.data?.state) row.querySelector('[data-testid="bot-state"]')?.replaceWith(badge(update.data.state, 'bot-state'));
    reload(update);
  }, signal);
  listen(app.stream, 'trade', reload, signal);

  if (app.may('trading.write')) {
    const configureBody = section(main, 'Configure a bot', { testid: 'configure-bot' });
    configureBody.append(loading());
    request('GET', '/kraken/keys', { query: { limit: 100 }, signal })
      .then((page) => replace(configureBody, configureForm(page.keys, navigate)))
      .catch((error) => {
        if (!signal.aborted) replace(configureBody, failure(error));
      });
  }
  await load();
}

/** A strategy in a few words. */
export function describeStrategy(strategy) {
  if (!strategy || typeof strategy !== 'object') return '';
  if (strategy.kind === 'dca') return `DCA: buy ${strategy.quote_amount} every ${strategy.interval_secs} s`;
  if (strategy.kind === 'threshold') {
    return `Threshold: buy ${strategy.quote_amount} below ${strategy.buy_below}, sell above ${strategy.sell_above}`;
  }
  return String(strategy.kind);
}

function botsTable(bots) {
  return table({
    caption: 'Bots',
    testid: 'bots-table',
    rowTestid: 'bot-row',
    rowKey: (b) => b.bot_id,
    empty: 'No bots yet.',
    rows: bots,
    columns: [
      ['Bot', (b) => h('a', { href: `#/bots/${encodeURIComponent(b.bot_id)}`, testid: 'bot-link' }, `${b.pair} · ${short(b.bot_id)}`)],
      ['Strategy', (b) => describeStrategy(b.strategy)],
      ['State', (b) => badge(b.state, 'bot-state')],
      ['Trades', (b) => String(b.trades_executed), 'num'],
      ['Errors', (b) => String(b.errors), 'num'],
      ['Updated', (b) => time(b.updated_at)],
    ],
  });
}

function configureForm(keys, navigate) {
  const usable = keys.filter((k) => k.status !== 'disconnected');
  if (!usable.length) {
    return h('p', { class: 'empty' }, 'Connect an exchange key first: ', h('a', { href: '#/keys' }, 'Keys'), '.');
  }
  const dca = h(
    'fieldset',
    { class: 'strategy', testid: 'strategy-dca' },
    h('legend', {}, 'Dollar-cost averaging'),
    field({ label: 'Amount per buy (quote currency)', name: 'strategy.quote_amount', inputmode: 'decimal', value: '25.00', testid: 'input-dca-quote_amount' }),
    field({ label: 'Interval (seconds)', name: 'strategy.interval_secs', type: 'number', min: 1, step: 1, value: '3600', testid: 'input-interval_secs' }),
  );
  const threshold = h(
    'fieldset',
    { class: 'strategy', testid: 'strategy-threshold' },
    h('legend', {}, 'Threshold'),
    field({ label: 'Buy when the price is at or below', name: 'strategy.buy_below', inputmode: 'decimal' }),
    field({ label: 'Sell when the price is at or above', name: 'strategy.sell_above', inputmode: 'decimal' }),
    field({ label: 'Amount per buy (quote currency)', name: 'strategy.quote_amount', inputmode: 'decimal', testid: 'input-threshold-quote_amount' }),
  );
  const kind = h(
    'fieldset',
    { class: 'choice' },
    h('legend', {}, 'Strategy'),
    radio('strategy.kind', 'dca', 'Dollar-cost averaging (DCA)', true),
    radio('strategy.kind', 'threshold', 'Threshold (buy low, sell high)', false),
  );
  const choose = () => {
    const isDca = kind.querySelector('input:checked').value === 'dca';
    dca.disabled = !isDca;
    dca.hidden = !isDca;
    threshold.disabled = isDca;
    threshold.hidden = isDca;
  };
  kind.addEventListener('change', choose);
  choose();
  const pairs = h('datalist', { id: 'common-pairs' }, COMMON_PAIRS.map((pair) => h('option', { value: pair })));
  return form({
    label: 'Configure a bot',
    testid: 'configure-form',
    submitLabel: 'Configure bot',
    children: [
      field({
        label: 'Exchange key',
        name: 'key_id',
        type: 'select',
        options: usable.map((k) => [k.key_id, `${k.label || k.fingerprint} (${k.status})`]),
        value: (usable.find((k) => k.status === 'tested') || usable[0]).key_id,
      }),
      field({ label: 'Pair', name: 'pair', list: 'common-pairs', value: 'XBT/USD', autocomplete: 'off', hint: 'BASE/QUOTE in capitals, e.g. XBT/USD.' }),
      pairs,
      kind,
      dca,
      threshold,
    ],
    onSubmit: async (element) => {
      const strategyKind = kind.querySelector('input:checked').value;
      const strategy = { kind: strategyKind };
      if (strategyKind === 'dca') {
        strategy.quote_amount = valueOf(dca, 'strategy.quote_amount') || '';
        const interval = Number(valueOf(dca, 'strategy.interval_secs'));
        if (!Number.isInteger(interval) || interval <= 0) {
          alertIn(element, 'The interval must be a whole number of seconds.');
          return;
        }
        strategy.interval_secs = interval;
      } else {
        strategy.buy_below = valueOf(threshold, 'strategy.buy_below') || '';
        strategy.sell_above = valueOf(threshold, 'strategy.sell_above') || '';
        strategy.quote_amount = valueOf(threshold, 'strategy.quote_amount') || '';
      }
      const answer = await request('POST', '/bot', {
        body: { key_id: element.elements.namedItem('key_id').value, pair: valueOf(element, 'pair') || '', strategy },
        idempotent: true,
      });
      navigate(`/bots/${encodeURIComponent(answer.bot_id)}?since=${encodeURIComponent(answer.position)}`);
    },
  });
}

function radio(name, value, label, checked) {
  const id = `r-${name.replace(/\W/g, '-')}-${value}`;
  return h(
    'div',
    { class: 'field-check' },
    h('input', { type: 'radio', id, name, value, checked, testid: `strategy-kind-${value}` }),
    h('label', { for: id }, label),
  );
}
