// The console's entry: the page's frame (navigation by role, the user, the
// unread badge, the live stream's state), the routes, and what happens on
// log-in, log-out and an expired session.

import { h, replace } from './dom.js';
import { currentSession, logOut, onSessionChange, request } from './api.js';
import { LiveStream } from './stream.js';
import { Router } from './router.js';
import { may } from './roles.js';
import { debounce } from './ui.js';

import * as login from './views/login.js';
import * as signup from './views/signup.js';
import * as verify from './views/verify.js';
import * as onboarding from './views/onboarding.js';
import * as account from './views/account.js';
import * as dashboard from './views/dashboard.js';
import * as keys from './views/keys.js';
import * as bots from './views/bots.js';
import * as bot from './views/bot.js';
import * as portfolio from './views/portfolio.js';
import * as notifications from './views/notifications.js';
import * as support from './views/support.js';
import * as ticket from './views/ticket.js';
import * as tickets from './views/tickets.js';
import * as adminUsers from './views/admin-users.js';
import * as adminUser from './views/admin-user.js';
import * as auditStreams from './views/audit-streams.js';
import * as auditVerify from './views/audit-verify.js';
import * as auditExports from './views/audit-exports.js';

// `access`: 'guest' (logged out only), 'any' (either), or a permission.
const ROUTES = [
  { path: '/login', title: 'Log in', render: login.render, access: 'guest' },
  { path: '/signup', title: 'Sign up', render: signup.render, access: 'guest' },
  { path: '/verify', title: 'Verify your email', render: verify.render, access: 'any' },
  { path: '/', title: 'Home', render: () => {}, access: 'account.own' },
  { path: '/onboarding', title: 'Onboarding', render: onboarding.render, access: 'account.own' },
  { path: '/account', title: 'Your account', render: account.render, access: 'account.own' },
  { path: '/dashboard', title: 'Dashboard', render: dashboard.render, access: 'trading.read' },
  { path: '/keys', title: 'Exchange keys', render: keys.render, access: 'trading.write' },
  { path: '/bots', title: 'Bots', render: bots.render, access: 'trading.read' },
  { path: '/bots/:id', title: 'Bot', render: bot.render, access: 'trading.read' },
  { path: '/portfolio', title: 'Positions and trades', render: portfolio.render, access: 'trading.read' },
  { path: '/notifications', title: 'Notifications', render: notifications.render, access: 'account.own' },
  { path: '/support', title: 'Support', render: support.render, access: 'tickets.own' },
  { path: '/support/:id', title: 'Support ticket', render: ticket.render, access: 'tickets.own' },
  { path: '/tickets', title: 'Support tickets', render: tickets.render, access: 'tickets.staff' },
  { path: '/tickets/:id', title: 'Support ticket', render: ticket.render, access: 'tickets.staff' },
  { path: '/admin/users', title: 'Users', render: adminUsers.render, access: 'users.read' },
  { path: '/admin/users/:id', title: 'User', render: adminUser.render, access: 'users.read' },
  { path: '/audit/streams', title: 'Audit: streams', render: auditStreams.render, access: 'audit.read' },
  { path: '/audit/verify', title: 'Audit: verify the log', render: auditVerify.render, access: 'audit.read' },
  { path: '/audit/exports', title: 'Audit: signed exports', render: auditExports.render, access: 'audit.read' },
];

// The navigation, each link shown to the roles holding its permission.
const NAVIGATION = [
  { href: '#/dashboard', label: 'Dashboard', permission: 'trading.write' },
  { href: '#/bots', label: 'Bots', permission: 'trading.write' },
  { href: '#/keys', label: 'Keys', permission: 'trading.write' },
  { href: '#/portfolio', label: 'Portfolio', permission: 'trading.write' },
  { href: '#/notifications', label: 'Notifications', permission: 'account.own', badge: true },
  { href: '#/support', label: 'Support', permission: 'tickets.own' },
  { href: '#/tickets', label: 'Tickets', permission: 'tickets.staff' },
  { href: '#/admin/users', label: 'Users', permission: 'users.read' },
  { href: '#/audit/streams', label: 'Audit', permission: 'audit.read', section: '/audit/' },
];

// The session's own live updates (an admin's or auditor's unfiltered
// stream would be everyone's); a view of another user's bot opens its own.
const stream = new LiveStream(() => `/stream?user_id=${encodeURIComponent(currentSession()?.user_id || '')}`);
const elements = {
  main: document.getElementById('main'),
  navList: document.getElementById('nav-links'),
  nav: document.getElementById('nav'),
  toggle: document.getElementById('nav-toggle'),
  who: document.getElementById('who'),
  announcer: document.getElementById('announcer'),
  connection: document.getElementById('connection'),
};

const app = {
  stream,
  me: null,
  unread: 0,
  /** The session's role, or null when logged out. */
  role() {
    return currentSession()?.role || null;
  },
  may(permission) {
    return may(app.role(), permission);
  },
  /** Says `text` to screen readers (the polite live region). */
  announce(text) {
    elements.announcer.textContent = '';
    // A new text node after a tick, so the same message twice is spoken twice.
    setTimeout(() => {
      elements.announcer.textContent = text;
    }, 50);
  },
  /** Reads the caller's user again (after onboarding, say). */
  async refreshMe(minPosition) {
    app.me = await request('GET', '/user/me', { query: { min_position: minPosition } });
    renderFrame();
    return app.me;
  },
  /** Reads the unread count again and shows it. */
  async refreshUnread() {
    if (!currentSession()) return;
    try {
      const page = await request('GET', '/notifications', { query: { limit: 1 } });
      setUnread(page.unread);
    } catch {
      // The badge keeps its last count; the next update tries again.
    }
  },
  setUnread,
  /** After a log-in: the user, the stream, then where the role starts. */
  async loggedIn(next) {
    await afterSessionStart();
    router.navigate(next && next.startsWith('/') ? next : homeOf(app.role()));
  },
};

function homeOf(role) {
  if (may(role, 'trading.write')) return '/dashboard';
  if (may(role, 'audit.read')) return '/audit/streams';
  return '/notifications';
}

function setUnread(count) {
  app.unread = Math.max(0, Number(count) || 0);
  for (const badge of document.querySelectorAll('[data-unread-badge]')) {
    badge.textContent = String(app.unread);
    badge.hidden = app.unread === 0;
  }
  for (const label of document.querySelectorAll('[data-unread-label]')) label.hidden = app.unread === 0;
}

const refreshUnreadSoon = debounce(() => app.refreshUnread(), 150);

/** Whether the navigation item is the page shown (or the section it opens). */
function current(item, path) {
  if (item.section) return path.startsWith(item.section);
  return `#${path}` === item.href || path.startsWith(`${item.href.slice(1)}/`);
}

function renderFrame() {
  const session = currentSession();
  const links = session
    ? NAVIGATION.filter((item) => may(session.role, item.permission))
    : [
        { href: '#/login', label: 'Log in' },
        { href: '#/signup', label: 'Sign up' },
      ];
  const { path } = router ? router.current() : { path: '/' };
  replace(
    elements.navList,
    links.map((item) =>
      h(
        'li',
        {},
        h(
          'a',
          {
            href: item.href,
            'aria-current': current(item, path) ? 'page' : null,
            testid: `nav-${item.label.toLowerCase().replace(/\s+/g, '-')}`,
          },
          item.label,
          // "Notifications 3 unread" to a screen reader, "Notifications 3" to the eye.
          item.badge
            ? [
                ' ',
                h('span', { class: 'count', dataset: { unreadBadge: '' }, testid: 'unread-badge', hidden: true }, '0'),
                h('span', { class: 'visually-hidden', dataset: { unreadLabel: '' }, hidden: true }, ' unread'),
              ]
            : null,
        ),
      ),
    ),
  );
  if (session) {
    const name = app.me ? app.me.display_name || app.me.email || 'you' : '…';
    replace(
      elements.who,
      h('a', { class: 'who-name', href: '#/account', testid: 'who', title: 'Your account' }, name),
      h('span', { class: 'badge badge-role', testid: 'role' }, session.role),
      h('button', { type: 'button', class: 'link-button', testid: 'logout', on: { click: onLogOut } }, 'Log out'),
    );
  } else {
    elements.who.replaceChildren();
  }
  setUnread(app.unread);
}

async function onLogOut() {
  await logOut();
  router.navigate('/login?notice=logged-out');
}

async function afterSessionStart() {
  try {
    app.me = await request('GET', '/user/me');
  } catch {
    app.me = null;
  }
  renderFrame();
  if (may(app.role(), 'trading.read')) stream.start();
  await app.refreshUnread();
}

function decide(route, path) {
  const session = currentSession();
  if (route.access === 'guest') return session ? homeOf(session.role) : null;
  if (route.access === 'any') return null;
  if (!session) return `/login?next=${encodeURIComponent(path)}`;
  if (path === '/') return homeOf(session.role);
  return may(session.role, route.access) ? null : homeOf(session.role);
}

function showConnection(state) {
  const text = {
    connecting: 'Connecting to live updates…',
    open: 'Live',
    retrying: 'Live updates interrupted, reconnecting…',
    closed: '',
  }[state];
  elements.connection.textContent = text;
  elements.connection.dataset.state = state;
}

const router = new Router({
  main: elements.main,
  routes: ROUTES,
  decide,
  context: { app },
  onRendered: () => {
    renderFrame();
    elements.nav.classList.remove('open');
    elements.toggle.setAttribute('aria-expanded', 'false');
  },
});

onSessionChange((session, reason) => {
  if (!session) {
    stream.stop();
    app.me = null;
    app.unread = 0;
    renderFrame();
    if (reason === 'expired') router.navigate('/login?notice=expired');
  }
});

stream.on('state', showConnection);
stream.on('notification', (update) => {
  if (update.user_id !== currentSession()?.user_id) return;
  setUnread(app.unread + 1);
  app.announce(`New notification: ${update.data?.message ?? ''}`);
  refreshUnreadSoon();
});
stream.on('notification_read', () => refreshUnreadSoon());
stream.on('open', () => refreshUnreadSoon());

elements.toggle.addEventListener('click', () => {
  const open = !elements.nav.classList.contains('open');
  elements.nav.classList.toggle('open', open);
  elements.toggle.setAttribute('aria-expanded', String(open));
});
document.getElementById('skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  elements.main.focus();
});

renderFrame();
if (currentSession()) await afterSessionStart();
router.start();
