#!/usr/bin/env node
// Drives the web console (/app) in Debian's headless Chromium through one
// scenario, as a person would, and checks it as it goes:
//
//   node scripts/node/console.mjs signup|trader|auditor|admin|smoke
//
// Inputs come from the environment (CONSOLE_URL, ARTEFACTS, CHROMIUM and
// each scenario's own, listed in SCENARIOS below; CONSOLE_TRACE=1 also
// prints each API request and its status on stderr). Prints one JSON object
// per line: `{"step": …, "ms": …}` as each step passes, then `{"ok": true,
// …results}`; on the first failed expectation it prints `{"ok": false,
// "step": …, "error": …}`, saves `<scenario>-failure.png` and exits 1.
//
// In every view it visits it runs axe-core and fails on a `serious` or
// `critical` violation; it fails on any console error, uncaught page error
// or CSP violation, on a request to any origin but CONSOLE_URL's, and on a
// reload of the page (the console is one page: `window.__noReload` is set
// after the first load and must still be there at the end). Screenshots of
// each main view go to ARTEFACTS as `<scenario>-<view>.png`, plus
// `<scenario>-<view>-phone.png` at 375×667 for some.
//
// playwright-core and axe-core are resolved from MUCKARD_NODE_TOOLS
// (default ~/.cache/muckard/node-tools, where scripts/services.sh
// `ensure_node_tools` installs package.json's dependencies), so the script
// runs from the repository.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOOLS = process.env.MUCKARD_NODE_TOOLS || path.join(os.homedir(), '.cache', 'muckard', 'node-tools');
const requireTool = createRequire(path.join(TOOLS, 'package.json'));

const SCENARIOS = {
  signup: { env: ['EMAIL', 'PASSWORD', 'DISPLAY_NAME'], run: signup },
  trader: { env: ['EMAIL', 'PASSWORD', 'CODE', 'KRAKEN_KEY', 'KRAKEN_SECRET', 'PAIR'], run: trader },
  auditor: { env: ['EMAIL', 'PASSWORD', 'AGGREGATE_TYPE', 'AGGREGATE_ID', 'SEQUENCE', 'USER_ID'], run: auditor },
  admin: { env: ['EMAIL', 'PASSWORD', 'SEARCH', 'TICKET_SUBJECT'], run: admin },
  smoke: { env: ['EMAIL', 'PASSWORD', 'BOT_ID'], run: smoke },
};

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 667 };
const LIVE_DEADLINE_MS = 30_000;
const STEP_DEADLINE_MS = 15_000;

class Expectation extends Error {}

function print(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

function expect(condition, message) {
  if (!condition) throw new Expectation(message);
}

async function main() {
  const name = process.argv[2];
  const scenario = SCENARIOS[name];
  if (!scenario) {
    process.stderr.write(`usage: console.mjs <${Object.keys(SCENARIOS).join('|')}>\n`);
    process.exit(2);
  }
  const missing = ['CONSOLE_URL', ...scenario.env].filter((variable) => !process.env[variable]);
  if (missing.length) {
    fail(name, 'setup', `missing environment variables: ${missing.join(', ')}`);
    return;
  }
  let playwright;
  let axePath;
  try {
    playwright = requireTool('playwright-core');
    axePath = requireTool.resolve('axe-core/axe.min.js');
  } catch (error) {
    fail(name, 'setup', `playwright-core and axe-core must be installed in ${TOOLS} (MUCKARD_NODE_TOOLS): ${error.message}`);
    return;
  }
  const artefacts = process.env.ARTEFACTS || path.join(os.tmpdir(), 'muckard-console-artefacts');
  fs.mkdirSync(artefacts, { recursive: true });
  const browser = await playwright.chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const driver = new Driver({ browser, name, artefacts, axeSource: fs.readFileSync(axePath, 'utf8'), consoleUrl: process.env.CONSOLE_URL });
  let current = 'open the console';
  try {
    await driver.open();
    const results = await scenario.run(driver, process.env, (step) => {
      current = step;
    });
    await driver.finish();
    print({ ok: true, scenario: name, ...results });
    await browser.close();
  } catch (error) {
    const step = driver.currentStep || current;
    await driver.page?.screenshot({ path: path.join(artefacts, `${name}-failure.png`), fullPage: true }).catch(() => {});
    await browser.close().catch(() => {});
    fail(name, step, error instanceof Expectation ? error.message : `${error.message}`, driver.problems);
  }
}

function fail(scenario, step, message, problems = []) {
  print({ ok: false, scenario, step, error: message, problems });
  process.stderr.write(`console.mjs ${scenario}: ${step}: ${message}\n`);
  for (const problem of problems) process.stderr.write(`  ${problem}\n`);
  process.exitCode = 1;
}

/** The page, its guards (console, CSP, origins, reloads) and the checks every view gets. */
class Driver {
  constructor({ browser, name, artefacts, axeSource, consoleUrl }) {
    this.browser = browser;
    this.name = name;
    this.artefacts = artefacts;
    this.axeSource = axeSource;
    this.consoleUrl = new URL(consoleUrl);
    this.origin = this.consoleUrl.origin;
    this.problems = [];
    this.loads = 0;
    this.currentStep = null;
    this.started = Date.now();
  }

  async open() {
    this.context = await this.browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    const page = await this.context.newPage();
    this.page = page;
    page.setDefaultTimeout(STEP_DEADLINE_MS);
    await page.exposeBinding('__consoleCspViolation', (_source, text) => this.problems.push(`CSP violation: ${text}`));
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        window.__consoleCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'} (${event.sourceFile || ''}:${event.lineNumber || ''})`);
      });
    });
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const where = message.location()?.url || '';
      // The API's refusals (a 4xx the console shows next to a field) are
      // answers, not faults: Chromium logs each as a failed resource.
      const refusal = /^Failed to load resource: the server responded with a status of 4\d\d/.test(message.text());
      if (refusal && where.startsWith(`${this.origin}/api/`)) return;
      this.problems.push(`console error: ${message.text()} (${where})`);
    });
    page.on('pageerror', (error) => this.problems.push(`page error: ${error.message}`));
    if (process.env.CONSOLE_TRACE) {
      // Every API request and answer on stderr, for whoever debugs a scenario.
      page.on('response', (response) => {
        const url = response.url();
        if (url.includes('/api/')) process.stderr.write(`${Date.now() - this.started} ms ${response.request().method()} ${url.slice(this.origin.length)} ${response.status()}\n`);
      });
    }
    page.on('request', (request) => {
      const url = request.url();
      if (url.startsWith('data:') || url.startsWith('blob:')) return;
      if (new URL(url).origin !== this.origin) this.problems.push(`request to another origin: ${url}`);
    });
    page.on('load', () => {
      this.loads += 1;
    });
    page.on('dialog', (dialog) => dialog.accept());
    await this.step('open the console', async () => {
      await page.goto(this.consoleUrl.href, { waitUntil: 'load' });
      await page.locator('main h1').first().waitFor();
      await page.evaluate(() => {
        window.__noReload = 1;
      });
    });
  }

  /** Runs one step, printing its time; throws on a guard's problem too. */
  async step(name, action) {
    this.currentStep = name;
    const started = Date.now();
    const result = await action();
    this.guard();
    print({ step: name, ms: Date.now() - started });
    this.currentStep = null;
    return result;
  }

  guard() {
    if (this.problems.length) throw new Expectation(`the page reported problems:\n${this.problems.join('\n')}`);
  }

  /** Runs axe-core on the page as it is; fails on serious or critical violations. */
  async axe(view) {
    const page = this.page;
    const loaded = await page.evaluate(() => typeof window.axe === 'object');
    if (!loaded) await page.evaluate(`${this.axeSource}\n;true`);
    const violations = await page.evaluate(async () => {
      const result = await window.axe.run(document, { resultTypes: ['violations'] });
      return result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
      }));
    });
    const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    const minor = violations.filter((v) => !serious.includes(v));
    if (minor.length) print({ axe: view, minor: minor.map((v) => `${v.impact} ${v.id}: ${v.help}`) });
    expect(
      !serious.length,
      `axe-core found serious accessibility violations in ${view}:\n${serious
        .map((v) => `${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`)
        .join('\n')}`,
    );
  }

  /** A full-page screenshot (and one at phone size) plus the accessibility check of a view. */
  async view(view, { phone = false } = {}) {
    await this.axe(view);
    await this.page.screenshot({ path: path.join(this.artefacts, `${this.name}-${view}.png`), fullPage: true });
    if (phone) {
      await this.page.setViewportSize(PHONE);
      await this.axe(`${view} (phone)`);
      await this.page.screenshot({ path: path.join(this.artefacts, `${this.name}-${view}-phone.png`), fullPage: true });
      await this.page.setViewportSize(DESKTOP);
    }
  }

  byTestId(id) {
    return this.page.getByTestId(id);
  }

  /** Waits until `predicate(arg)` holds in the page, failing with `message` at the deadline. */
  async until(predicate, arg, message, timeout = STEP_DEADLINE_MS) {
    try {
      await this.page.waitForFunction(predicate, arg, { timeout, polling: 100 });
    } catch (error) {
      if (/Timeout/i.test(error.message)) throw new Expectation(`${message} (after ${timeout} ms)`);
      throw error;
    }
  }

  /** Waits for a locator to be visible, failing with `message`. */
  async visible(locator, message, timeout = STEP_DEADLINE_MS) {
    try {
      await locator.first().waitFor({ state: 'visible', timeout });
    } catch (error) {
      if (/Timeout/i.test(error.message)) throw new Expectation(`${message} (after ${timeout} ms)`);
      throw error;
    }
  }

  /** Follows a link of the main navigation (opening the menu on a phone). */
  async nav(testid) {
    const toggle = this.byTestId('nav-toggle');
    if (await toggle.isVisible()) await toggle.click();
    await this.byTestId(testid).click();
  }

  /** Fills and submits the log-in form. */
  async logIn(email, password) {
    const page = this.page;
    await this.visible(this.byTestId('login-form'), 'the log-in form is not shown');
    await this.byTestId('input-email').fill(email);
    await this.byTestId('input-password').fill(password);
    await this.byTestId('login-form-submit').click();
    await this.visible(this.byTestId('logout'), 'the console did not log in (no log-out button)');
    await page.locator('main h1').first().waitFor();
  }

  /** The page was never reloaded: the marker set after the first load is still there. */
  async finish() {
    await this.step('the page was never reloaded', async () => {
      const marker = await this.page.evaluate(() => window.__noReload);
      expect(marker === 1, 'window.__noReload is gone: the page was reloaded');
      expect(this.loads === 1, `the page loaded ${this.loads} times; the console must not reload`);
    });
  }
}

async function signup(d, env) {
  const page = d.page;
  await d.step('the log-in page offers sign-up', async () => {
    await d.visible(d.byTestId('login-form'), 'the console did not start at the log-in form');
    await d.view('login', { phone: true });
    await d.nav('nav-sign-up');
    await d.visible(d.byTestId('signup-form'), 'the sign-up form is not shown');
  });
  await d.step('an invalid email is refused next to the email field', async () => {
    await d.byTestId('input-email').fill('not-an-email');
    await d.byTestId('input-password').fill(env.PASSWORD);
    await d.byTestId('input-display_name').fill(env.DISPLAY_NAME);
    await d.byTestId('signup-form-submit').click();
    const email = d.byTestId('input-email');
    await d.until(
      () => document.querySelector('[data-testid="input-email"]')?.getAttribute('aria-invalid') === 'true',
      null,
      'the email field was not marked invalid',
    );
    const described = await email.evaluate((input) =>
      (input.getAttribute('aria-describedby') || '')
        .split(' ')
        .map((id) => document.getElementById(id))
        .filter((element) => element && element.classList.contains('field-error') && !element.hidden)
        .map((element) => element.textContent)
        .join(' '),
    );
    expect(described.trim().length > 0, 'no error text is tied to the email field by aria-describedby');
    print({ field_error: described });
    await d.view('signup-error');
  });
  await d.step('sign up', async () => {
    await d.byTestId('input-email').fill(env.EMAIL);
    await d.byTestId('input-password').fill(env.PASSWORD);
    await d.byTestId('signup-form-submit').click();
    await d.visible(d.byTestId('verify-form'), 'the console did not ask for the emailed code');
    await d.visible(d.byTestId('registered'), 'the console did not say the account was created');
    const email = await d.byTestId('input-email').inputValue();
    expect(email === env.EMAIL, `the code form holds the email ${email}, not ${env.EMAIL}`);
    await d.view('verify', { phone: true });
  });
  return { email: env.EMAIL, url: page.url() };
}

async function trader(d, env) {
  const page = d.page;
  await d.step('verify the email with the code', async () => {
    await d.visible(d.byTestId('login-form'), 'the console did not start at the log-in form');
    await page.getByRole('link', { name: 'Verify your email' }).click();
    await d.visible(d.byTestId('verify-form'), 'the verification form is not shown');
    await d.byTestId('input-email').fill(env.EMAIL);
    await d.byTestId('input-code').fill(env.CODE);
    await d.byTestId('verify-form-submit').click();
    await d.visible(d.byTestId('email-verified'), 'the console did not confirm the email');
  });
  await d.step('log in', async () => {
    await d.logIn(env.EMAIL, env.PASSWORD);
    await d.visible(d.byTestId('dashboard-bots'), 'the trader did not land on the dashboard');
    const role = await d.byTestId('role').textContent();
    expect(role === 'user', `the console shows the role ${role}`);
  });
  await d.step('complete onboarding', async () => {
    if (await d.byTestId('notice-onboarding').isVisible()) {
      await d.byTestId('start-onboarding').click();
      await d.visible(d.byTestId('onboarding-form'), 'the onboarding form is not shown');
      await d.view('onboarding');
      await d.byTestId('input-risk_profile').selectOption('balanced');
      await d.byTestId('input-experience').selectOption('intermediate');
      await d.byTestId('input-terms_version').check();
      await d.byTestId('onboarding-form-submit').click();
      await d.visible(d.byTestId('dashboard-bots'), 'onboarding did not return to the dashboard');
    }
    await d.until(() => !document.querySelector('[data-testid="notice-onboarding"]'), null, 'the dashboard still asks for onboarding');
    await d.view('dashboard', { phone: true });
  });
  await d.step('connect a Kraken key', async () => {
    await d.nav('nav-keys');
    await d.visible(d.byTestId('connect-form'), 'the key form is not shown');
    await d.byTestId('connect-form').getByTestId('input-label').fill('console key');
    await d.byTestId('connect-form').getByTestId('input-api_key').fill(env.KRAKEN_KEY);
    await d.byTestId('connect-form').getByTestId('input-api_secret').fill(env.KRAKEN_SECRET);
    await d.byTestId('connect-form-submit').click();
    await d.visible(d.byTestId('key-row'), 'the connected key is not listed');
    const secretField = await d.byTestId('connect-form').getByTestId('input-api_secret').inputValue();
    expect(secretField === '', 'the secret field still holds text after connecting');
    const html = await page.content();
    expect(!html.includes(env.KRAKEN_SECRET), "the secret appears in the page's HTML");
    const anywhere = await page.evaluate(
      (secret) =>
        [...document.querySelectorAll('input, textarea')].some((control) => control.value.includes(secret)) ||
        JSON.stringify({ ...sessionStorage }).includes(secret) ||
        JSON.stringify({ ...localStorage }).includes(secret),
      env.KRAKEN_SECRET,
    );
    expect(!anywhere, 'the secret is still held by a form control or the storage');
  });
  await d.step('test the key', async () => {
    await d.byTestId('test-key').first().click();
    await d.visible(d.byTestId('key-status').filter({ hasText: /^tested$/ }), 'the key did not pass its test');
    await d.view('keys');
  });
  const botId = await d.step('configure a bot', async () => {
    await d.nav('nav-bots');
    await d.visible(d.byTestId('configure-form'), 'the bot form is not shown');
    await d.byTestId('input-pair').fill(env.PAIR);
    await d.byTestId('strategy-kind-dca').check();
    await d.byTestId('input-dca-quote_amount').fill('25.00');
    await d.byTestId('input-interval_secs').fill('3600');
    await d.view('bots');
    await d.byTestId('configure-form-submit').click();
    await d.visible(d.byTestId('bot-state').filter({ hasText: /^configured$/ }), 'the new bot is not shown as configured');
    const match = /#\/bots\/([^?]+)/.exec(page.url());
    expect(match, `the console did not open the bot (at ${page.url()})`);
    return decodeURIComponent(match[1]);
  });
  const msToRunning = await d.step('start the bot and see it running, live', async () => {
    const clicked = Date.now();
    await d.byTestId('start-bot').click();
    await d.visible(d.byTestId('bot-state').filter({ hasText: /^running$/ }), 'the bot was not shown running', LIVE_DEADLINE_MS);
    return Date.now() - clicked;
  });
  const msToTrade = await d.step('trigger a trade and see it arrive, live', async () => {
    const before = await d.byTestId('bot-trade').count();
    await d.visible(d.byTestId('trigger-trade').and(page.locator(':enabled')), 'the trigger button is not enabled');
    // Timed from just before the click: the click's promise may settle
    // after the trade is already made.
    const clicked = Date.now();
    await d.byTestId('trigger-trade').click();
    // A DCA bot also buys once as it starts: the trade looked for is one
    // executed after the click.
    await d.until(
      ({ count, since }) => {
        const rows = [...document.querySelectorAll('[data-testid="bot-trade"]')];
        return rows.length > count && rows.some((row) => Date.parse(row.dataset.executedAt) >= since);
      },
      { count: before, since: clicked },
      'no new trade appeared in the bot’s trades',
      LIVE_DEADLINE_MS,
    );
    return Date.now() - clicked;
  });
  await d.step('the bot’s counters follow its trades', async () => {
    await d.until(
      () => {
        const executed = Number(document.querySelector('[data-testid="bot-trades-executed"]')?.textContent);
        return executed > 0 && executed >= document.querySelectorAll('[data-testid="bot-trade"]').length;
      },
      null,
      'the bot’s “trades executed” did not catch up with its trades',
    );
  });
  await d.step('the bot shows its price chart and ticker', async () => {
    await d.visible(d.byTestId('ticker-last'), 'the ticker is not shown');
    await d.until(
      () => {
        const chart = document.querySelector('svg[data-testid="price-chart"]');
        return Boolean(chart && chart.querySelector('path[d^="M"]'));
      },
      null,
      'the price chart (an svg with a path) is not drawn',
    );
    await d.view('bot', { phone: true });
  });
  await d.step('positions show the P&L', async () => {
    await d.nav('nav-portfolio');
    await d.visible(d.byTestId('position-row'), 'no position is listed');
    const pair = await d.byTestId('position-row').first().locator('td').nth(0).textContent();
    expect(pair === env.PAIR, `the position is in ${pair}, not ${env.PAIR}`);
    await d.visible(page.getByRole('columnheader', { name: 'Realised P&L' }), 'the positions have no realised P&L column');
    await d.visible(d.byTestId('trade-row'), 'the trades are not listed');
    await d.view('portfolio');
  });
  const unread = await d.step('the notifications badge shows the unread count', async () => {
    // The badge settles on what the API counts (fills raise notifications
    // only where the notifier runs, so the count may be 0: then no badge).
    await d.until(
      async () => {
        const session = JSON.parse(sessionStorage.getItem('muckard.console.session') || 'null');
        const response = await fetch('/api/v1/notifications?limit=1', { headers: { Authorization: `Bearer ${session.access_token}` } });
        if (!response.ok) return false;
        const { unread: count } = await response.json();
        const badge = document.querySelector('[data-testid="unread-badge"]');
        return Boolean(badge) && (count === 0 ? badge.hidden : !badge.hidden && Number(badge.textContent) === count);
      },
      null,
      'the notifications badge does not show the unread count the API gives',
      LIVE_DEADLINE_MS,
    );
    const badge = d.byTestId('unread-badge');
    const count = (await badge.isVisible()) ? Number(await badge.textContent()) : 0;
    await d.nav('nav-notifications');
    await d.visible(d.byTestId(count ? 'notification' : 'notifications-empty'), 'the notifications are not listed');
    await d.view('notifications');
    if (count) {
      await d.byTestId('mark-all-read').click();
      await d.until(() => document.querySelector('[data-testid="unread-badge"]')?.hidden === true, null, 'the badge did not clear after marking all read');
    }
    return count;
  });
  return { bot_id: botId, ms_start_to_running: msToRunning, ms_trigger_to_trade: msToTrade, unread_notifications: unread };
}

async function auditor(d, env) {
  const page = d.page;
  await d.step('log in', async () => {
    await d.logIn(env.EMAIL, env.PASSWORD);
    await d.visible(d.byTestId('stream-form'), 'the auditor did not land on the stream browser');
    const role = await d.byTestId('role').textContent();
    expect(role === 'auditor' || role === 'admin', `the console shows the role ${role}`);
  });
  const events = await d.step('browse the stream’s events', async () => {
    await d.byTestId('input-type').selectOption(env.AGGREGATE_TYPE);
    await d.byTestId('input-id').fill(env.AGGREGATE_ID);
    await d.byTestId('input-point').selectOption('end');
    await d.byTestId('stream-form-submit').click();
    await d.visible(d.byTestId('audit-event'), 'the stream’s events are not listed');
    const count = await d.byTestId('audit-event').count();
    expect(count >= Number(env.SEQUENCE), `the stream lists ${count} events, fewer than sequence ${env.SEQUENCE}`);
    await d.view('audit-streams', { phone: true });
    return count;
  });
  await d.step('the state as of sequence 1', async () => {
    await d.byTestId('input-point').selectOption('sequence');
    await d.byTestId('input-at_sequence').fill('1');
    await d.byTestId('stream-form-submit').click();
    await d.visible(d.byTestId('state-sequence').filter({ hasText: /^1$/ }), 'the state as of sequence 1 is not shown');
    await d.until(() => document.querySelectorAll('[data-testid="audit-event"]').length === 1, null, 'the state is not shown with the one event that built it');
    await d.visible(d.byTestId('state-json'), 'the folded state is not shown');
    await d.view('audit-state');
  });
  const broken = await d.step('verify the log and see the broken row named', async () => {
    await d.byTestId('audit-tab-verify').click();
    await d.visible(d.byTestId('verify-log-form'), 'the verification form is not shown');
    await d.byTestId('verify-log-form-submit').click();
    await d.visible(d.byTestId('verify-verdict'), 'no verdict was shown', LIVE_DEADLINE_MS);
    const clean = await d.byTestId('verify-verdict').getAttribute('data-clean');
    expect(clean === 'false', 'the verification says the log is clean, but a row was tampered with');
    const rows = await page.$$eval('[data-testid="broken-row"]', (elements) =>
      elements.map((row) => ({
        type: row.querySelector('[data-testid="broken-type"]')?.textContent,
        id: row.querySelector('[data-testid="broken-id"]')?.textContent,
        sequence: row.querySelector('[data-testid="broken-sequence"]')?.textContent,
        position: row.querySelector('[data-testid="broken-position"]')?.textContent,
        problem: row.querySelector('[data-testid="broken-problem"]')?.textContent,
      })),
    );
    const named = rows.find((r) => r.type === env.AGGREGATE_TYPE && r.id === env.AGGREGATE_ID && r.sequence === String(env.SEQUENCE));
    expect(named, `no broken row names ${env.AGGREGATE_TYPE}/${env.AGGREGATE_ID} sequence ${env.SEQUENCE}: ${JSON.stringify(rows)}`);
    expect(named.problem && named.problem.length > 10, 'the broken row does not say what is wrong');
    await d.view('audit-verify', { phone: true });
    return { rows: rows.length, problem: named.problem };
  });
  const exported = await d.step('download the signed export and verify it', async () => {
    await d.byTestId('audit-tab-exports').click();
    await d.visible(d.byTestId('export-form'), 'the export form is not shown');
    await d.byTestId('input-user_id').fill(env.USER_ID);
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: LIVE_DEADLINE_MS }), d.byTestId('export-form-submit').click()]);
    const file = path.join(d.artefacts, `${d.name}-export.json`);
    await download.saveAs(file);
    const text = fs.readFileSync(file, 'utf8');
    const report = JSON.parse(text);
    expect(report.content && report.signature && report.digest, 'the downloaded file is not a signed report');
    await d.byTestId('verify-downloaded').click();
    await d.visible(d.byTestId('export-verdict'), 'no verdict on the downloaded export');
    const valid = await d.byTestId('export-verdict').getAttribute('data-valid');
    expect(valid === 'true', `the downloaded export is shown as invalid: ${await d.byTestId('export-result').textContent()}`);
    return { file, name: download.suggestedFilename(), bytes: Buffer.byteLength(text) };
  });
  await d.step('the same file picked from disk verifies', async () => {
    await d.byTestId('report-file').setInputFiles(exported.file);
    await d.byTestId('verify-file-form-submit').click();
    await d.visible(d.byTestId('export-verdict').filter({ hasText: path.basename(exported.file) }), 'no verdict on the picked file');
    const valid = await d.byTestId('export-verdict').getAttribute('data-valid');
    expect(valid === 'true', 'the picked, unaltered file is shown as invalid');
  });
  await d.step('a file altered by one byte is shown invalid', async () => {
    const bytes = fs.readFileSync(exported.file);
    const at = alterationPoint(bytes);
    const altered = Buffer.from(bytes);
    altered[at] = altered[at] === 0x39 ? 0x30 : altered[at] + 1; // one digit, one byte
    await d.byTestId('report-file').setInputFiles({ name: 'altered-report.json', mimeType: 'application/json', buffer: altered });
    await d.byTestId('verify-file-form-submit').click();
    await d.visible(d.byTestId('export-verdict').filter({ hasText: 'altered-report.json' }), 'no verdict on the altered file');
    const valid = await d.byTestId('export-verdict').getAttribute('data-valid');
    expect(valid === 'false', 'the altered file is shown as valid');
    await d.view('audit-exports', { phone: true });
  });
  return { events, broken_rows: broken.rows, problem: broken.problem, export_bytes: exported.bytes, export_file: exported.file };
}

/** The offset of the first digit inside the report's `content` (so the JSON stays readable). */
function alterationPoint(bytes) {
  const text = bytes.toString('latin1');
  const content = text.indexOf('"content"');
  const start = content >= 0 ? content : 0;
  for (let i = start; i < text.length; i += 1) {
    if (text[i] >= '0' && text[i] <= '9') return i;
  }
  throw new Expectation('the report has no digit to alter');
}

async function admin(d, env) {
  const page = d.page;
  await d.step('log in', async () => {
    await d.logIn(env.EMAIL, env.PASSWORD);
    const role = await d.byTestId('role').textContent();
    expect(role === 'admin', `the console shows the role ${role}`);
  });
  const userId = await d.step('search users and open one', async () => {
    await d.nav('nav-users');
    await d.visible(d.byTestId('user-search'), 'the user search is not shown');
    await d.byTestId('input-q').fill(env.SEARCH);
    await d.byTestId('user-search-submit').click();
    const link = d.byTestId('user-link').filter({ hasText: env.SEARCH });
    await d.visible(link, `no user matching ${env.SEARCH} is listed`);
    await d.view('admin-users', { phone: true });
    await link.first().click();
    await d.visible(d.byTestId('user-email').filter({ hasText: env.SEARCH }), 'the user’s page is not shown');
    const match = /#\/admin\/users\/([^?]+)/.exec(page.url());
    return decodeURIComponent(match[1]);
  });
  await d.step('change the user’s role and back', async () => {
    const original = (await d.byTestId('user-role').textContent()).trim();
    const other = original === 'support' ? 'auditor' : 'support';
    await d.byTestId('input-role').selectOption(other);
    await d.byTestId('role-form-submit').click();
    await d.visible(d.byTestId('user-role').filter({ hasText: new RegExp(`^${other}$`) }), `the role did not become ${other}`);
    await d.byTestId('input-role').selectOption(original);
    await d.byTestId('role-form-submit').click();
    await d.visible(d.byTestId('user-role').filter({ hasText: new RegExp(`^${original}$`) }), `the role did not go back to ${original}`);
  });
  await d.step('disable and enable the user', async () => {
    await d.byTestId('input-reason').fill('checked by the console test');
    await d.byTestId('disable-form-submit').click();
    await d.visible(d.byTestId('user-account').filter({ hasText: /^disabled$/ }), 'the account is not shown disabled');
    await d.view('admin-user');
    await d.byTestId('enable-user').click();
    await d.visible(d.byTestId('user-account').filter({ hasText: /^active$/ }), 'the account is not shown active again');
  });
  const ticketId = await d.step('reply to the ticket', async () => {
    await d.nav('nav-tickets');
    const link = d.byTestId('ticket-link').filter({ hasText: env.TICKET_SUBJECT });
    await d.visible(link, `no open ticket “${env.TICKET_SUBJECT}” is listed`);
    await d.view('admin-tickets');
    await link.first().click();
    await d.visible(d.byTestId('reply-form'), 'the ticket’s reply form is not shown');
    const reply = `Thanks, we are on it (${new Date().toISOString()})`;
    await d.byTestId('input-body').fill(reply);
    await d.byTestId('reply-form-submit').click();
    await d.visible(d.byTestId('message').filter({ hasText: reply }), 'the reply is not in the conversation');
    await d.view('admin-ticket', { phone: true });
    const match = /#\/tickets\/([^?]+)/.exec(page.url());
    return decodeURIComponent(match[1]);
  });
  return { user_id: userId, ticket_id: ticketId };
}

/**
 * The console through a gateway: a user with a running bot (BOT_ID) logs
 * in, sees the dashboard and the bot's page with its live stream open, and
 * the keys; every file and call on the one origin.
 */
async function smoke(d, env) {
  const page = d.page;
  await d.step('log in', async () => {
    await d.logIn(env.EMAIL, env.PASSWORD);
    await d.visible(d.byTestId('dashboard-bots'), 'the dashboard is not shown');
    await d.view('dashboard');
  });
  await d.step('open the running bot and its live stream', async () => {
    await d.nav('nav-bots');
    const link = page.locator(`[data-testid="bot-link"][href="#/bots/${encodeURIComponent(env.BOT_ID)}"]`);
    await d.visible(link, 'the bot is not listed');
    await link.first().click();
    await d.visible(d.byTestId('bot-state').filter({ hasText: /^running$/ }), 'the bot is not shown running');
    await d.until(
      () => document.querySelector('[data-testid="stream-state"]')?.dataset.state === 'open',
      null,
      'the live stream did not open through the gateway',
    );
    await d.view('bot');
  });
  await d.step('the keys', async () => {
    await d.nav('nav-keys');
    await d.visible(d.byTestId('key-row'), 'the key is not listed');
    await d.view('keys');
  });
  return { bot_id: env.BOT_ID };
}

await main();
