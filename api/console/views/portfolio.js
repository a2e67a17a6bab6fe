// Positions with their P&L (realised from the ledger; unrealised at the
// last price, computed here exactly) and the trades, filtered and paged;
// both updated in place from the event stream.

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { field, form, valueOf } from '../forms.js';
import { amount, localToRfc3339, multiply, parseDecimal, short, subtract, time, toFixed } from '../format.js';
import { heading, section, table, tableRow, loading, failure, listen, button } from '../ui.js';
import { signed, tradeColumns } from './dashboard.js';

export async function render({ main, app, signal }) {
  heading(main, 'Positions and trades');
  const everyone = app.may('trading.read_all');
  const positionsBody = section(main, everyone ? 'Positions (all users)' : 'Positions', { testid: 'positions' });
  positionsBody.append(loading());
  const tradesSection = section(main, everyone ? 'Trades (all users)' : 'Trades', { testid: 'trades' });
  const prices = new Map();
  let positions = [];

  const positionColumns = [
    ...(everyone ? [['User', (p) => h('code', {}, short(p.user_id))]] : []),
    ['Pair', (p) => p.pair],
    ['Quantity', (p) => amount(p.quantity), 'num'],
    ['Average cost', (p) => amount(p.average_cost), 'num'],
    ['Cost basis', (p) => amount(p.cost_basis), 'num'],
    ['Last price', (p) => amount(prices.get(p.pair)), 'num'],
    ['Unrealised P&L', (p) => unrealised(p, prices.get(p.pair)), 'num'],
    ['Realised P&L', (p) => signed(p.realised_pnl), 'num'],
    ['Updated', (p) => time(p.updated_at)],
  ];
  const drawPositions = () =>
    replace(
      positionsBody,
      table({
        caption: 'Positions per pair with profit and loss',
        testid: 'positions-table',
        rowTestid: 'position-row',
        rowKey: (p) => `${p.user_id}/${p.pair}`,
        empty: 'No positions yet: they appear with the first fill.',
        rows: positions,
        columns: positionColumns,
      }),
    );
  const loadPrices = async () => {
    const pairs = [...new Set(positions.map((p) => p.pair))].filter((pair) => !prices.has(pair));
    await Promise.all(
      pairs.map((pair) =>
        request('GET', '/market/ticker', { query: { pair }, signal })
          .then((ticker) => prices.set(pair, ticker.last))
          .catch(() => prices.set(pair, null)),
      ),
    );
  };
  const loadPositions = async (minPosition) => {
    const page = await request('GET', '/trading/positions', { query: { min_position: minPosition, limit: 500 }, signal });
    positions = page.positions;
    drawPositions();
    await loadPrices();
    if (!signal.aborted) drawPositions();
  };

  listen(app.stream, 'position', (update) => {
    const data = update.data || {};
    const row = { ...data, user_id: update.user_id, trades: undefined };
    const index = positions.findIndex((p) => p.pair === data.pair && p.user_id === update.user_id);
    if (index >= 0) positions[index] = { ...positions[index], ...row };
    else positions.push(row);
    drawPositions();
    loadPrices().then(() => !signal.aborted && drawPositions());
    app.announce(`Position in ${data.pair} updated`);
  }, signal);

  const trades = tradesPanel({ app, signal, everyone });
  tradesSection.append(trades.element);
  try {
    await loadPositions();
  } catch (error) {
    if (!signal.aborted) replace(positionsBody, failure(error));
  }
  await trades.load();
}

/** quantity × last − cost basis, to the cent; a dash without a price. */
function unrealised(position, last) {
  const quantity = parseDecimal(position.quantity);
  const cost = parseDecimal(position.cost_basis);
  const price = parseDecimal(last);
  if (!quantity || !cost || !price) return '—';
  return signed(toFixed(subtract(multiply(quantity, price), cost), 2));
}

function tradesPanel({ app, signal, everyone }) {
  const columns = tradeColumns({ everyone });
  let filters = {};
  let cursor = null;
  let rows = [];
  const list = h('div', {});
  const more = button('Older trades', () => load(true), { testid: 'older-trades' });
  more.hidden = true;
  const filterForm = form({
    label: 'Filter trades',
    testid: 'trade-filter',
    submitLabel: 'Filter',
    className: 'inline',
    children: [
      field({ label: 'Bot id', name: 'bot_id', autocomplete: 'off', spellcheck: 'false' }),
      field({ label: 'Pair', name: 'pair', autocomplete: 'off', placeholder: 'XBT/USD' }),
      field({ label: 'From', name: 'from', type: 'datetime-local' }),
      field({ label: 'To', name: 'to', type: 'datetime-local' }),
    ],
    onSubmit: async (element) => {
      filters = {
        bot_id: valueOf(element, 'bot_id'),
        pair: valueOf(element, 'pair'),
        from: localToRfc3339(valueOf(element, 'from')),
        to: localToRfc3339(valueOf(element, 'to')),
      };
      await load(false, element);
    },
  });
  const draw = () =>
    replace(
      list,
      table({
        caption: 'Trades, newest first',
        testid: 'trades-table',
        rowTestid: 'trade-row',
        rowKey: (t) => t.order_id,
        empty: 'No trades match.',
        rows,
        columns,
      }),
    );
  async function load(older = false, formElement = null) {
    try {
      const page = await request('GET', '/trading/trades', {
        query: { ...filters, limit: 50, cursor: older ? cursor : undefined },
        signal,
      });
      rows = older ? [...rows, ...page.trades] : page.trades;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      draw();
    } catch (error) {
      if (signal.aborted) return;
      if (formElement) throw error; // shown next to the filter it names
      replace(list, failure(error));
    }
  }
  listen(app.stream, 'trade', (update) => {
    const trade = { ...update.data, user_id: update.user_id };
    const unfiltered = !filters.bot_id && !filters.pair && !filters.from && !filters.to;
    if (!unfiltered || rows.some((t) => t.order_id === trade.order_id)) return;
    rows.unshift(trade);
    const body = list.querySelector('tbody');
    if (body) body.prepend(tableRow(columns, trade, 'trade-row', (t) => t.order_id));
    else draw();
  }, signal);
  return { element: h('div', {}, filterForm, list, h('div', { class: 'actions' }, more)), load: () => load() };
}
