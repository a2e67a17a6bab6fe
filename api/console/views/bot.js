// One bot: its state kept live from the event stream, start / stop /
// trigger a trade, its fills (new ones added in place), its errors, and a
// price chart of its pair with the ticker.

import { h, replace } from '../dom.js';
import { currentSession, request, segment } from '../api.js';
import { amount, short, time, words } from '../format.js';
import { priceChart } from '../chart.js';
import { LiveStream } from '../stream.js';
import { heading, section, table, tableRow, badge, loading, failure, listen, debounce, facts, status, button } from '../ui.js';
import { describeStrategy } from './bots.js';

const CHART_INTERVAL = '15m';
const CHART_CANDLES = 96; // a day of quarter hours

/** Compares two positions (`<transaction>.<global position>`); unknown ones are oldest. */
export function comparePositions(a, b) {
  const parse = (p) => {
    const match = /^([0-9]+)\.([0-9]+)$/.exec(String(p || ''));
    return match ? [BigInt(match[1]), BigInt(match[2])] : [-1n, -1n];
  };
  const [at, ag] = parse(a);
  const [bt, bg] = parse(b);
  if (at !== bt) return at < bt ? -1 : 1;
  if (ag !== bg) return ag < bg ? -1 : 1;
  return 0;
}

const TRADE_COLUMNS = [
  ['Time', (t) => time(t.executed_at)],
  ['Side', (t) => words(t.side)],
  ['Quantity', (t) => amount(t.quantity), 'num'],
  ['Price', (t) => amount(t.price), 'num'],
  ['Fee', (t) => amount(t.fee), 'num'],
  ['Order', (t) => h('code', {}, short(t.order_id, 12))],
];

/** A fill's time on its row, for whoever reads the page (and the tests). */
const tradeData = (t) => ({ executedAt: t.executed_at });

export async function render({ main, params, query, app, signal }) {
  const botId = params.id;
  const path = `/bot/${segment(botId)}`;
  heading(main, 'Bot');
  const title = main.querySelector('h1');
  const view = {
    state: null,
    statePosition: null,
    bot: null,
    trades: [],
    errors: [],
    latest: query.get('since') || undefined,
    reads: 0,
  };

  const top = h('div', { class: 'grid' });
  main.append(top);
  const statusBody = section(top, 'Status', { testid: 'bot-status' });
  const stateLine = h('p', { class: 'state-line', 'aria-live': 'polite', testid: 'bot-state-live' });
  const factsBox = h('div', {});
  const outcome = status('bot-action-status');
  const controls = h('div', { class: 'actions', testid: 'bot-controls' });
  statusBody.append(stateLine, controls, outcome.element, factsBox);
  const marketBody = section(top, 'Market', { testid: 'bot-market' });
  marketBody.append(loading());
  const tradesBody = section(main, 'Trades', { testid: 'bot-trades' });
  tradesBody.append(loading());
  const errorsBody = section(main, 'Errors', { testid: 'bot-errors' });

  const showState = (state, position) => {
    if (!state) return;
    // A read or an answer older than the last state seen changes nothing.
    if (view.statePosition && comparePositions(position, view.statePosition) < 0) return;
    const changed = view.state !== null && view.state !== state;
    view.state = state;
    if (position) view.statePosition = position;
    replace(stateLine, 'State: ', badge(state, 'bot-state'));
    updateControls();
    if (changed) app.announce(`Bot ${view.bot ? view.bot.pair : ''} is ${words(state)}`);
  };

  const showErrors = () => {
    const bot = view.bot;
    const seen = view.errors.length ? view.errors : bot && bot.last_error ? [{ error: bot.last_error, at: bot.last_error_at }] : [];
    replace(
      errorsBody,
      seen.length
        ? h(
            'ul',
            { class: 'error-list', testid: 'bot-error-list' },
            seen.map((e) => h('li', { testid: 'bot-error' }, h('span', { class: 'small' }, time(e.at)), ' ', e.error)),
          )
        : h('p', { class: 'empty', testid: 'bot-errors-empty' }, bot && bot.errors ? `${bot.errors} errors; none since this page opened.` : 'No errors.'),
    );
  };

  const showFacts = (bot) => {
    replace(
      factsBox,
      facts([
        ['Pair', bot.pair, 'bot-pair'],
        ['Strategy', describeStrategy(bot.strategy)],
        ['Exchange key', h('code', {}, short(bot.key_id))],
        ['Trades executed', String(bot.trades_executed), 'bot-trades-executed'],
        ['Trades skipped', String(bot.trades_skipped)],
        ['Errors', String(bot.errors), 'bot-error-count'],
        ['Last skip', bot.last_skip || '—'],
        ['Configured', time(bot.created_at)],
        ['Updated', time(bot.updated_at)],
      ]),
    );
  };

  const loadStatus = async () => {
    const read = ++view.reads;
    const asked = view.latest;
    const bot = await request('GET', `${path}/status`, { query: { min_position: asked }, signal });
    if (read !== view.reads) return bot; // a newer read is under way
    const first = !view.bot;
    view.bot = bot;
    title.textContent = `Bot ${bot.pair}`;
    document.title = `Bot ${bot.pair} · Muckard console`;
    showState(bot.state, asked);
    showFacts(bot);
    showErrors();
    if (first) loadMarket(bot.pair).catch(() => {});
    return bot;
  };
  const reloadStatus = debounce(() => loadStatus().catch(() => {}), 250);

  const mine = () => view.bot && currentSession() && view.bot.owner_id === currentSession().user_id;
  const act = async (label, actionPath, body, buttonElement) => {
    outcome.clear();
    buttonElement.disabled = true;
    try {
      const answer = await request('POST', `${path}/${actionPath}`, { body, idempotent: true });
      if (answer.state) showState(answer.state, answer.position);
      view.latest = answer.position;
      outcome.say(`${label}: requested.`);
      return answer;
    } catch (error) {
      outcome.fail(error);
      return null;
    } finally {
      updateControls();
    }
  };
  const startButton = button('Start', () => act('Start', 'start', undefined, startButton), { kind: 'primary', testid: 'start-bot' });
  const stopButton = button('Stop', () => act('Stop', 'stop', undefined, stopButton), { kind: 'secondary', testid: 'stop-bot' });
  const triggerButton = button('Trigger a trade', () => act('Trade', 'trigger-trade', undefined, triggerButton), {
    kind: 'secondary',
    testid: 'trigger-trade',
  });
  const updateControls = () => {
    if (!app.may('trading.write') || !mine()) {
      controls.hidden = true;
      return;
    }
    controls.hidden = false;
    startButton.disabled = !['configured', 'stopped'].includes(view.state);
    stopButton.disabled = !['starting', 'running'].includes(view.state);
    triggerButton.disabled = view.state !== 'running';
  };
  controls.append(startButton, stopButton, triggerButton);
  controls.hidden = true;

  const tradeTable = () => {
    replace(
      tradesBody,
      view.trades.length
        ? table({
            caption: 'Trades of this bot, newest first',
            testid: 'bot-trades-table',
            rowTestid: 'bot-trade',
            rowKey: (t) => t.order_id,
            rowData: tradeData,
            rows: view.trades,
            columns: TRADE_COLUMNS,
          })
        : h('p', { class: 'empty', testid: 'bot-trades-empty' }, 'No trades yet.'),
    );
  };
  const loadTrades = async () => {
    const page = await request('GET', '/trading/trades', { query: { bot_id: botId, limit: 50 }, signal });
    const known = new Set(page.trades.map((t) => t.order_id));
    // Fills that arrived live while the page was read stay at the top.
    view.trades = [...view.trades.filter((t) => !known.has(t.order_id)), ...page.trades];
    tradeTable();
  };

  let market = null;
  const loadMarket = async (pair) => {
    const [ticker, candles] = await Promise.allSettled([
      request('GET', '/market/ticker', { query: { pair }, signal }),
      request('GET', '/market/ohlcv', { query: { pair, interval: CHART_INTERVAL }, signal }),
    ]);
    if (signal.aborted) return;
    market = { ticker, candles };
    drawMarket(pair);
  };
  const drawMarket = (pair) => {
    if (!market) return;
    const { ticker, candles } = market;
    replace(
      marketBody,
      ticker.status === 'fulfilled'
        ? h(
            'p',
            { class: 'ticker', testid: 'ticker' },
            h('span', { class: 'small' }, `${pair} last price `),
            h('strong', { testid: 'ticker-last' }, amount(ticker.value.last)),
            h('span', { class: 'small' }, ` at ${time(ticker.value.read_at)}`),
          )
        : failure(ticker.reason),
      candles.status === 'fulfilled'
        ? priceChart({
            candles: candles.value.candles.slice(-CHART_CANDLES),
            marks: view.trades.map((t) => ({ time: t.executed_at, price: t.price, side: t.side })),
            label: `${pair} price, ${CHART_INTERVAL} candles`,
          })
        : failure(candles.reason),
    );
  };

  const onStatus = (update) => {
    const data = update.data || {};
    if (data.bot_id !== botId) return;
    view.latest = update.id;
    if (data.state) showState(data.state, update.id);
    if (data.error) {
      view.errors.unshift({ error: data.error, at: data.at });
      showErrors();
    }
    reloadStatus();
  };
  const onTrade = (update) => {
    const trade = update.data || {};
    if (trade.bot_id !== botId) return;
    view.latest = update.id;
    if (!view.trades.some((t) => t.order_id === trade.order_id)) {
      view.trades.unshift(trade);
      const body = tradesBody.querySelector('tbody');
      if (body) body.prepend(tableRow(TRADE_COLUMNS, trade, 'bot-trade', (t) => t.order_id, tradeData));
      else tradeTable();
      app.announce(`New ${trade.side} trade: ${trade.quantity} at ${trade.price}`);
    }
    if (view.bot) drawMarket(view.bot.pair);
    reloadStatus();
  };
  // After a reconnection, read again what may have changed meanwhile.
  const onOpen = () => {
    reloadStatus();
    loadTrades().catch(() => {});
  };
  const follow = (source) => {
    listen(source, 'bot_status', onStatus, signal);
    listen(source, 'trade', onTrade, signal);
    listen(source, 'open', onOpen, signal);
  };
  // The session's stream carries the caller's own bots; staff looking at
  // another user's bot follow that user's stream while the view is open.
  follow(app.stream);
  try {
    const bot = await loadStatus();
    if (bot.owner_id !== currentSession()?.user_id && app.may('trading.read_all')) {
      const owners = new LiveStream(`/stream?user_id=${encodeURIComponent(bot.owner_id)}`);
      follow(owners);
      owners.start();
      signal.addEventListener('abort', () => owners.stop(), { once: true });
    }
  } catch (error) {
    if (signal.aborted) return;
    replace(statusBody, failure(error));
    return;
  }
  await loadTrades().catch((error) => {
    if (!signal.aborted) replace(tradesBody, failure(error));
  });
  if (view.bot) drawMarket(view.bot.pair);
}
