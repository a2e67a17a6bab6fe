// The trader's home (GET /api/v1/dashboard): bots by state, realised P&L
// today and in total, the last fills and the unread count, read again as
// live updates arrive.

import { h, replace } from '../dom.js';
import { request } from '../api.js';
import { amount, sign, time, words, short } from '../format.js';
import { heading, section, table, loading, failure, listen, debounce, facts } from '../ui.js';

/** The columns of a table of trades (with their owner when `everyone`). */
export function tradeColumns({ everyone = false } = {}) {
  return [
    ['Time', (t) => time(t.executed_at)],
    ...(everyone ? [['User', (t) => h('code', {}, short(t.user_id))]] : []),
    ['Bot', (t) => h('a', { href: `#/bots/${encodeURIComponent(t.bot_id)}` }, short(t.bot_id))],
    ['Pair', (t) => t.pair],
    ['Side', (t) => words(t.side)],
    ['Quantity', (t) => amount(t.quantity), 'num'],
    ['Price', (t) => amount(t.price), 'num'],
    ['Fee', (t) => amount(t.fee), 'num'],
  ];
}

export async function render({ main, app, signal }) {
  heading(main, 'Dashboard');
  const notices = h('div', { class: 'notices' });
  main.append(notices);
  showNotices(notices, app);
  const grid = h('div', { class: 'grid' });
  main.append(grid);
  const botsBody = section(grid, 'Bots', {
    testid: 'dashboard-bots',
    actions: h('a', { href: '#/bots', class: 'button-link' }, 'Manage bots'),
  });
  const pnlBody = section(grid, 'Realised P&L', { testid: 'dashboard-pnl' });
  const tradesBody = section(main, 'Last trades', { testid: 'dashboard-trades' });
  for (const body of [botsBody, pnlBody, tradesBody]) body.append(loading());

  const load = async (minPosition) => {
    let board;
    try {
      board = await request('GET', '/dashboard', { query: { min_position: minPosition }, signal });
    } catch (error) {
      if (signal.aborted) return;
      replace(botsBody, failure(error));
      return;
    }
    showBots(botsBody, board.bots);
    showPnl(pnlBody, board);
    replace(
      tradesBody,
      table({
        caption: 'Last trades',
        testid: 'last-trades',
        rowTestid: 'last-trade',
        empty: 'No trades yet.',
        rows: board.last_trades,
        columns: tradeColumns(),
      }),
    );
    app.setUnread(board.unread_notifications);
  };
  const reload = debounce((update) => load(update && update.id), 200);
  for (const type of ['bot_status', 'trade', 'position']) listen(app.stream, type, reload, signal);
  listen(app.stream, 'open', () => reload(), signal);
  await load();
}

function showNotices(notices, app) {
  const me = app.me;
  if (!me) return;
  if (!me.email_verified) {
    notices.append(
      h(
        'p',
        { class: 'alert info', testid: 'notice-verify' },
        'Your email is not verified yet. ',
        h('a', { href: `#/verify?email=${encodeURIComponent(me.email || '')}` }, 'Enter your code'),
        '.',
      ),
    );
  }
  if (!me.onboarded) {
    notices.append(
      h(
        'p',
        { class: 'alert info', testid: 'notice-onboarding' },
        'Finish setting up your account. ',
        h('a', { href: '#/onboarding', testid: 'start-onboarding' }, 'Complete onboarding'),
        '.',
      ),
    );
  }
}

function showBots(body, bots) {
  const states = Object.entries(bots.by_state || {});
  replace(
    body,
    h('p', { class: 'big-number', testid: 'bots-total' }, String(bots.total), h('span', {}, bots.total === 1 ? ' bot' : ' bots')),
    states.length
      ? facts(states.map(([state, count]) => [words(state), String(count), `bots-${state}`]), 'bots-by-state')
      : h('p', { class: 'empty' }, 'No bots yet. ', h('a', { href: '#/bots' }, 'Configure one'), '.'),
  );
}

function showPnl(body, board) {
  const rows = (board.realised_total || []).map((total) => ({
    quote: total.quote,
    total,
    today: (board.realised_today || []).find((t) => t.quote === total.quote),
  }));
  replace(
    body,
    table({
      caption: 'Realised profit and loss by quote currency',
      testid: 'pnl',
      empty: 'No realised P&L yet.',
      rows,
      columns: [
        ['Currency', (r) => r.quote],
        ['Today', (r) => signed(r.today ? r.today.realised_pnl : '0'), 'num'],
        ['Total', (r) => signed(r.total.realised_pnl), 'num'],
        ['Fees', (r) => amount(r.total.fees), 'num'],
        ['Fills', (r) => String(r.total.trades), 'num'],
      ],
    }),
    h('p', { class: 'small' }, `Today is ${board.today} (UTC). Realised P&L counts sales; open positions are in `, h('a', { href: '#/portfolio' }, 'Portfolio'), '.'),
  );
}

/** A P&L amount coloured by its sign (the sign is in the text too). */
export function signed(text) {
  const s = sign(text);
  return h('span', { class: s > 0 ? 'gain' : s < 0 ? 'loss' : null }, amount(text));
}
