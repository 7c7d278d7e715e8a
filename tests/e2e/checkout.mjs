#!/usr/bin/env node
// End-to-end browser test of the Stripe Checkout flow against the local dev
// stack (demo storefront + Stripe simulator + local SES outbox).
//
// Plain Node script, no test framework: exits 0 on success, 1 on failure.
//
// Environment:
//   SHOP_URL   storefront base URL            (default http://127.0.0.1:9100)
//   ARTIFACTS  screenshot/output directory    (default tests/e2e/artifacts, relative to cwd)
//   CHROMIUM   Chromium executable            (default /usr/bin/chromium)
//
// Scenario:
//   1. storefront -> "Buy now" (price_mug) -> simulator hosted checkout page
//   2. pay -> /thanks?session_id=cs_... (examples/success.html) -> #order-message
//      data-state becomes "fulfilled", with the Mug in #order-items and #order-total
//   3. storefront -> "Buy now" (price_tea) -> consent to promotions -> let it expire
//   4. /dev/outbox: exactly one cart-recovery email to the shopper, exactly one
//      order confirmation to the buyer, a fulfilled order, and the recovery decision
//      "done" for the expired session. The recovery email's own page (/dev/outbox/{n})
//      shows its headers (List-Unsubscribe…), text part and HTML frame; its unsubscribe
//      link opens the unsubscribe page. Outbox, email page and unsubscribe page are also
//      checked and captured at 390 px wide (nothing wider than the viewport, frame unclipped).
//   5. /embedded: an embedded-mode session mounted in the page, paid inside the frame.
//   6. storefront -> "Subscribe" (price_plan) -> pay -> fulfilled; the outbox shows the
//      subscription active and prod_plan granted to its customer; the simulator's billing
//      page cancels it; the outbox shows it canceled and the access revoked.
//   7. /returning (a signed-in returning customer): POST /payments with a customer token, the
//      simulator's Payment Element page offers the saved card; paying with it lands on
//      /payments/return with the payment succeeded and the order fulfilled.
//   8. /returning again, paid with a delayed method that fails: the return page shows the
//      payment processing, then failed with a retry link; the outbox holds one "pending"
//      and one "did not go through" email for the customer.
//   9. /example (examples/checkout-button.html): the plain form and the fetch button both
//      reach the hosted page. Paid there with a delayed method, the success page shows
//      "awaiting_payment"; settled as failed on the simulator, "payment_failed". Then
//      /thanks?session_id=cs_test_doesnotexist ("not_found") and ?session_id=nope
//      ("invalid_request") both read "We could not find this order".

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// ---------------------------------------------------------------- settings --

const SCRIPT_DIR = path.dirname(fileURLToPath(import.meta.url));
const SHOP_URL = (process.env.SHOP_URL || 'http://127.0.0.1:9100').replace(/\/+$/, '');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Default is tests/e2e/artifacts relative to the cwd (i.e. run from the repo
// root); when run from this folder itself (`npm test`) that is ./artifacts.
const ARTIFACTS = path.resolve(
  process.env.ARTIFACTS ||
    (path.resolve(process.cwd()) === SCRIPT_DIR ? 'artifacts' : 'tests/e2e/artifacts'),
);

const STEP_TIMEOUT = 20_000; // upper bound for any single wait
const ACTION_TIMEOUT = 10_000; // clicks, fills, element lookups
const POLL_INTERVAL = 500;
const SETTLE_MS = 3_000; // extra wait before counting emails (catch duplicates)
const WATCHDOG_MS = 180_000; // hard stop for the whole run

const RUN_ID = `${Date.now()}`;
const BUYER_EMAIL = `buyer+${RUN_ID}@example.com`;
const BUYER_NAME = 'Ada Buyer';
const SHOPPER_EMAIL = `shopper+${RUN_ID}@example.com`;
const SHOPPER_NAME = 'Sam Shopper';
const SUBSCRIBER_EMAIL = `subscriber+${RUN_ID}@example.com`;
// The simulator's demo returning customer (stripe_simulator::DEMO_CUSTOMER).
const RETURNING_EMAIL = 'returning@example.com';
const RECOVERY_SUBJECT = 'you left something in your cart';
const CONFIRMATION_SUBJECT = 'your order is confirmed';

// ----------------------------------------------------------------- helpers --

class E2EError extends Error {
  constructor(what, expected, found) {
    super(`${what}\n  expected: ${expected}\n  found:    ${found}`);
    this.name = 'E2EError';
  }
}

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const log = (msg) => console.log(`[e2e ${elapsed()}] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shorten = (s, n = 400) => {
  const one = String(s ?? '').replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n)}…` : one;
};
const json = (v) => JSON.stringify(v);

let page; // current page, for failure screenshots
const consoleErrors = [];
const failedRequests = [];

async function screenshot(name) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true, timeout: ACTION_TIMEOUT });
  log(`screenshot ${file}`);
}

// Short description of what the browser is currently showing.
async function whereAmI() {
  if (!page) return '(no page)';
  let text = '';
  try {
    text = await page.evaluate(() => document.body?.innerText ?? '');
  } catch (e) {
    text = `(could not read page: ${e.message.split('\n')[0]})`;
  }
  return `url=${page.url()} text="${shorten(text, 300)}"`;
}

async function goto(url, what) {
  let resp;
  try {
    resp = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: STEP_TIMEOUT });
  } catch (e) {
    throw new E2EError(`${what}: could not load ${url}`, 'page loads', e.message.split('\n')[0]);
  }
  if (!resp || !resp.ok()) {
    throw new E2EError(
      `${what}: bad HTTP status for ${url}`,
      'HTTP 2xx',
      `HTTP ${resp ? resp.status() : '(no response)'}; ${await whereAmI()}`,
    );
  }
  return resp;
}

async function waitForUrl(re, what) {
  try {
    await page.waitForURL(re, { timeout: STEP_TIMEOUT, waitUntil: 'domcontentloaded' });
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    throw new E2EError(
      `${what}: URL did not match within ${STEP_TIMEOUT / 1000}s`,
      `URL matching ${re}`,
      await whereAmI(),
    );
  }
}

// The single element matching `selector`, visible; fails with a clear message.
async function element(selector, what) {
  const loc = page.locator(selector);
  try {
    await loc.first().waitFor({ state: 'visible', timeout: ACTION_TIMEOUT });
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    throw new E2EError(
      `${what}: element not visible within ${ACTION_TIMEOUT / 1000}s`,
      `a visible ${selector}`,
      `${await loc.count()} matching element(s); ${await whereAmI()}`,
    );
  }
  const n = await loc.count();
  if (n !== 1) {
    throw new E2EError(`${what}: ambiguous selector`, `exactly one ${selector}`, `${n} elements`);
  }
  return loc;
}

// Calls `probe` every `interval` ms until it returns { ok: true } or the
// timeout passes. `probe` returns { ok, found, fatal }; `fatal` stops at once
// (a terminal wrong state); exceptions count as "not yet".
async function poll(what, expected, probe, { timeout = STEP_TIMEOUT, interval = POLL_INTERVAL } = {}) {
  const deadline = Date.now() + timeout;
  let last = '(never probed)';
  for (;;) {
    try {
      const r = await probe();
      if (r.ok) return r;
      last = r.found;
      if (r.fatal) throw new E2EError(`${what} (terminal state)`, expected, last);
    } catch (e) {
      if (e instanceof E2EError) throw e;
      last = `error: ${e.message.split('\n')[0]}`;
    }
    if (Date.now() >= deadline) {
      throw new E2EError(`${what} (gave up after ${timeout / 1000}s)`, expected, last);
    }
    await sleep(interval);
  }
}

async function clickBuyNow(priceId) {
  const button = await element(`button[data-price="${priceId}"]`, `storefront "Buy now" for ${priceId}`)
    .catch(async (e) => {
      const prices = await page
        .locator('button[data-price]')
        .evaluateAll((bs) => bs.map((b) => b.getAttribute('data-price')))
        .catch(() => []);
      throw new E2EError(
        `storefront: no "Buy now" button for ${priceId}`,
        `button[data-price="${priceId}"]`,
        `buttons with data-price: ${json(prices)}\n  (${e.message.split('\n')[0]})`,
      );
    });
  const label = shorten(await button.innerText({ timeout: ACTION_TIMEOUT }));
  if (!/buy now/i.test(label)) {
    throw new E2EError(`storefront: button for ${priceId}`, 'text "Buy now"', `"${label}"`);
  }
  await button.click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/c\/pay\/cs_/, `after "Buy now" (${priceId})`);
  log(`on hosted checkout page ${page.url()}`);
}

async function readOutbox() {
  const emails = await page.locator('#emails tr.email').evaluateAll((rows) =>
    rows.map((r) => ({
      to: (r.querySelector('td.to')?.textContent ?? '').trim(),
      subject: (r.querySelector('td.subject')?.textContent ?? '').trim(),
      href: r.querySelector('td.subject a')?.getAttribute('href') ?? null,
    })),
  );
  const orders = await page.locator('#orders tr.order').evaluateAll((rows) =>
    rows.map((r) => ({
      id: (r.querySelector('td.order-id')?.textContent ?? '').trim(),
      state: (r.querySelector('td.state')?.textContent ?? '').trim(),
    })),
  );
  const decisions = await page.locator('#decisions tr.decision').evaluateAll((rows) =>
    rows.map((r) => ({
      session: (r.querySelector('td.session')?.textContent ?? '').trim(),
      outcome: (r.querySelector('td.outcome')?.textContent ?? '').trim(),
    })),
  );
  return { emails, orders, decisions };
}

// The success page (examples/success.html): its raw state and the words shown.
async function readSuccess(frameOrPage = page) {
  const el = frameOrPage.locator('#order-message');
  return {
    state: await el.getAttribute('data-state', { timeout: 1000 }),
    text: ((await el.textContent({ timeout: 1000 })) ?? '').trim(),
  };
}

// Waits until the success page's #order-message has data-state `want` and shows `words`.
async function waitForSuccessState(what, want, words, { fatal = [] } = {}) {
  const seen = [];
  await poll(what, `#order-message data-state="${want}" reading "${words}"`, async () => {
    const { state, text } = await readSuccess();
    const shown = `${state} "${text}"`;
    if (seen[seen.length - 1] !== shown) {
      seen.push(shown);
      log(`success page: ${shown}`);
    }
    return {
      ok: state === want && text.includes(words),
      fatal: fatal.includes(state),
      found: `seen: ${seen.join(' -> ')}`,
    };
  });
}

// At the current viewport, nothing may be wider than the window (no sideways scrolling).
async function expectNoOverflow(what) {
  const found = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .slice(0, 5)
      .map((el) => `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).replace(/\s+/g, '.')}` : ''}> right=${Math.round(el.getBoundingClientRect().right)}`);
    // Elements whose own content (a long word, a wide child) spills out of them.
    const spilling = [...document.querySelectorAll('body *')]
      .filter((el) => el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 && getComputedStyle(el).overflowX === 'visible')
      .slice(0, 5)
      .map((el) => `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}> content ${el.scrollWidth}px in ${el.clientWidth}px`);
    return { width, scroll: document.documentElement.scrollWidth, wide: wide.concat(spilling) };
  });
  if (found.scroll > found.width + 1 || found.wide.length > 0) {
    throw new E2EError(`${what}: wider than the viewport`, `nothing wider than ${found.width}px`, `scrollWidth=${found.scroll}; ${found.wide.join(', ')}`);
  }
}

// The email page's HTML frame shows all of its content (no inner scrolling, no clipping).
async function expectFrameUnclipped(what) {
  const sizes = await page.evaluate(() => {
    const frame = document.querySelector('#html-part');
    const doc = frame?.contentDocument;
    return frame && doc
      ? { frame: frame.clientHeight, content: doc.documentElement.scrollHeight, frameWidth: frame.getBoundingClientRect().right, contentWidth: doc.documentElement.scrollWidth, inner: doc.documentElement.clientWidth }
      : null;
  });
  if (!sizes || sizes.frame + 2 < sizes.content || sizes.contentWidth > sizes.inner + 1 || sizes.frame < 100) {
    throw new E2EError(`${what}: the HTML frame`, 'a frame as tall as its content, nothing wider than it', json(sizes));
  }
}

// Requests the scenario makes fail on purpose: the browser logs their 4xx as console errors.
const EXPECTED_FAILURES = [/\/checkout\/complete\?session_id=(cs_test_doesnotexist|nope)$/];

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

const emailsMatching = (emails, address, subject) =>
  emails.filter(
    (m) => m.to.toLowerCase().includes(address.toLowerCase()) && m.subject.toLowerCase().includes(subject),
  );

// --------------------------------------------------------------- scenario --

async function run() {
  log(`SHOP_URL=${SHOP_URL} CHROMIUM=${CHROMIUM} ARTIFACTS=${ARTIFACTS}`);
  log(`buyer=${BUYER_EMAIL} shopper=${SHOPPER_EMAIL}`);

  // 1. Storefront -> hosted checkout page (mug).
  log('step 1: storefront, Buy now (price_mug)');
  await goto(`${SHOP_URL}/`, 'storefront');
  await screenshot('1-storefront.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('storefront at 390 px');
  await screenshot('1-storefront-390.png');
  await page.setViewportSize(DESKTOP);
  await clickBuyNow('price_mug');
  await element('#email', 'checkout page');
  await screenshot('2-checkout-page.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('simulator checkout page at 390 px');
  await screenshot('2-checkout-page-390.png');
  await page.setViewportSize(DESKTOP);

  // 2. Pay -> thanks page -> fulfilled.
  log('step 2: pay and wait for fulfilment');
  await (await element('#email', 'checkout page email')).fill(BUYER_EMAIL, { timeout: ACTION_TIMEOUT });
  await (await element('#name', 'checkout page name')).fill(BUYER_NAME, { timeout: ACTION_TIMEOUT });
  await (await element('#pay', 'checkout page Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after Pay');
  if (!page.url().startsWith(`${SHOP_URL}/thanks`)) {
    throw new E2EError('after Pay: redirected to the wrong site', `${SHOP_URL}/thanks?session_id=cs_…`, page.url());
  }
  const sessionId = new URL(page.url()).searchParams.get('session_id');
  log(`on thanks page, session ${sessionId}`);

  // payment_failed is terminal: the success page stops polling there.
  await waitForSuccessState('thanks page: the order', 'fulfilled', 'Thank you! Your order is confirmed.', { fatal: ['payment_failed'] });
  const items = await (await element('#order-items', 'thanks page items')).innerText({ timeout: ACTION_TIMEOUT });
  if (!/mug/i.test(items)) {
    throw new E2EError('thanks page: order items', '#order-items containing "Mug"', `"${shorten(items)}"`);
  }
  const total = await (await element('#order-total', 'thanks page total')).innerText({ timeout: ACTION_TIMEOUT });
  if (!/^Total: .*\d/.test(total.trim())) {
    throw new E2EError('thanks page: order total', '#order-total "Total: <amount>"', `"${shorten(total)}"`);
  }
  const merchant = (await (await element('header.site .merchant', 'thanks page merchant name')).textContent()).trim();
  if (!merchant) throw new E2EError('thanks page: merchant name', 'a merchant name in the header', '(empty)');
  await screenshot('3-success.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('thanks page at 390 px');
  await screenshot('3-success-390.png');
  await page.setViewportSize(DESKTOP);

  // 3. Second session (tea), consent to promotions, let it expire.
  log('step 3: Buy now (price_tea), consent, let it expire');
  await goto(`${SHOP_URL}/`, 'storefront (second visit)');
  await clickBuyNow('price_tea');
  const teaSession = page.url().match(/\/c\/pay\/(cs_[^/?#]+)/)[1];
  await (await element('#email', 'checkout page email')).fill(SHOPPER_EMAIL, { timeout: ACTION_TIMEOUT });
  await (await element('#name', 'checkout page name')).fill(SHOPPER_NAME, { timeout: ACTION_TIMEOUT });
  await (await element('#consent', 'checkout page consent checkbox')).check({ timeout: ACTION_TIMEOUT });
  await (await element('#expire', 'checkout page expire button')).click({ timeout: ACTION_TIMEOUT });
  try {
    await page.locator('#expired').first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    throw new E2EError(
      `after "Let it expire": no #expired within ${STEP_TIMEOUT / 1000}s`,
      'element #expired ("Session expired")',
      await whereAmI(),
    );
  }
  const expiredText = await page.locator('#expired').first().innerText({ timeout: ACTION_TIMEOUT });
  if (!/expired/i.test(expiredText)) {
    throw new E2EError('expired page: heading', '#expired text containing "expired"', `"${shorten(expiredText)}"`);
  }
  await screenshot('4-expired.png');

  // 4. Outbox: recovery email (once), confirmation email (once), fulfilled order.
  log('step 4: outbox');
  const outboxUrl = `${SHOP_URL}/dev/outbox`;
  const describe = ({ emails }) =>
    `${emails.length} email(s) in outbox: ${json(emails.map((m) => `${m.to} | ${m.subject}`))}`;
  await poll(
    'outbox: recovery and confirmation emails',
    `an email to ${SHOPPER_EMAIL} with subject containing "You left something in your cart" ` +
      `and one to ${BUYER_EMAIL} with subject containing "${CONFIRMATION_SUBJECT}"`,
    async () => {
      await goto(outboxUrl, 'outbox');
      const box = await readOutbox();
      const ok =
        emailsMatching(box.emails, SHOPPER_EMAIL, RECOVERY_SUBJECT).length > 0 &&
        emailsMatching(box.emails, BUYER_EMAIL, CONFIRMATION_SUBJECT).length > 0;
      return { ok, found: describe(box) };
    },
  );
  log(`emails arrived; waiting ${SETTLE_MS / 1000}s more to catch duplicates`);
  await sleep(SETTLE_MS);
  await goto(outboxUrl, 'outbox (final)');
  const box = await readOutbox();
  await screenshot('5-outbox.png');

  const expectEmails = (what, to, subject, count) => {
    const found = emailsMatching(box.emails, to, subject);
    if (found.length !== count) {
      throw new E2EError(
        `outbox: ${what}`,
        `${count} email(s) to ${to} with subject containing "${subject}"`,
        `${found.length}; ${describe(box)}`,
      );
    }
    return found;
  };
  const recovery = expectEmails('cart-recovery email must be sent exactly once', SHOPPER_EMAIL, RECOVERY_SUBJECT, 1);
  const confirmation = expectEmails('order confirmation must be sent exactly once', BUYER_EMAIL, CONFIRMATION_SUBJECT, 1);
  expectEmails('the buyer paid, so must not get a cart-recovery email', BUYER_EMAIL, RECOVERY_SUBJECT, 0);
  if (!box.orders.some((o) => o.state.toLowerCase() === 'fulfilled')) {
    throw new E2EError(
      'outbox: orders table',
      'a #orders tr.order whose td.state is "fulfilled"',
      `${box.orders.length} order row(s): ${json(box.orders)}`,
    );
  }
  await recoveryEmailPages(outboxUrl, teaSession, recovery[0]);

  log('step 5: embedded mode');
  await goto(`${SHOP_URL}/embedded`, 'embedded example');
  await (await element('#start', 'embedded example start button')).click();
  const frame = page.frameLocator('#checkout iframe');
  await frame.locator('#email').fill(`embedded+${RUN_ID}@example.com`, { timeout: STEP_TIMEOUT });
  await frame.locator('#pay').click();
  await poll('embedded checkout: the success page in the frame', '#order-message data-state "fulfilled"', async () => {
    const found = await readSuccess(frame);
    return { ok: found.state === 'fulfilled', found: json(found) };
  });
  await screenshot('6-embedded.png');

  const subscription = await subscribeAndCancel(outboxUrl);
  const returning = await payAsReturningCustomer(outboxUrl);
  const delayed = await exampleSuccessStates();

  return `e2e: paid order fulfilled (${sessionId}), ${recovery.length} recovery email (decision done, unsubscribe page opened), ${confirmation.length} confirmation email, embedded order fulfilled, ${subscription} granted then revoked on cancel, returning customer paid with a saved card (${returning.paid}) and retried after a late failure (${returning.failed}), example success page awaiting then failed (${delayed}), not found and malformed ids shown as not found`;
}

// Step 4, continued: the recovery decision, the recovery email's page, its unsubscribe link.
async function recoveryEmailPages(outboxUrl, teaSession, recoveryEmail) {
  log(`step 4b: recovery decision for ${teaSession}, the email's page, the unsubscribe page`);
  await poll('outbox: the recovery decision', `a #decisions row for ${teaSession} with outcome "done"`, async () => {
    await goto(outboxUrl, 'outbox (decisions)');
    const { decisions } = await readOutbox();
    const row = decisions.find((d) => d.session === teaSession);
    return { ok: row?.outcome === 'done', found: json(decisions.slice(0, 5)) };
  });
  await page.setViewportSize(PHONE);
  await expectNoOverflow('outbox at 390 px');
  await screenshot('5-outbox-390.png');
  await page.setViewportSize(DESKTOP);

  if (!recoveryEmail.href || !/^\/dev\/outbox\/\d+$/.test(recoveryEmail.href)) {
    throw new E2EError('outbox: the recovery email row', 'a link to /dev/outbox/{n}', json(recoveryEmail));
  }
  await goto(`${SHOP_URL}${recoveryEmail.href}`, 'the recovery email page');
  const headers = await page.locator('#headers dt').allTextContents();
  for (const name of ['From', 'To', 'Subject', 'List-Unsubscribe', 'List-Unsubscribe-Post']) {
    if (!headers.some((h) => h.trim().toLowerCase() === name.toLowerCase())) {
      throw new E2EError('email page: headers', `a ${name} header`, json(headers));
    }
  }
  const text = await (await element('#text-part', 'email page text part')).innerText();
  if (!/unsubscribe/i.test(text)) {
    throw new E2EError('email page: text part', 'the text part, with its unsubscribe link', shorten(text));
  }
  const listUnsubscribe = await page.locator('dd[data-header="list-unsubscribe"] a.header-link').first().getAttribute('href');
  const frame = page.frameLocator('#html-part');
  const unsubscribe = await frame.locator('a[href*="/recovery/unsubscribe"]').getAttribute('href', { timeout: ACTION_TIMEOUT });
  if (!unsubscribe || unsubscribe !== listUnsubscribe) {
    throw new E2EError('email page: unsubscribe link', `the HTML's link equal to List-Unsubscribe (${listUnsubscribe})`, `${unsubscribe}`);
  }
  await page.waitForFunction(() => document.querySelector('#html-part')?.clientHeight > 100, null, { timeout: ACTION_TIMEOUT });
  await expectFrameUnclipped('email page');
  await screenshot('5b-email.png');
  await page.setViewportSize(PHONE);
  await sleep(200); // the frame is sized again on resize
  await expectNoOverflow('email page at 390 px');
  await expectFrameUnclipped('email page at 390 px');
  await screenshot('5b-email-390.png');

  await goto(unsubscribe, 'the unsubscribe link');
  const heading = (await (await element('h1', 'unsubscribe page heading')).textContent()).trim();
  const shop = await page.locator('header.site a.merchant').getAttribute('href');
  if (heading !== 'You are unsubscribed' || !shop) {
    throw new E2EError('unsubscribe page', '"You are unsubscribed" under the merchant\'s name, linked to the shop', `h1="${heading}" shop=${shop}`);
  }
  await expectNoOverflow('unsubscribe page at 390 px');
  await screenshot('5c-unsubscribe-390.png');
  await page.setViewportSize(DESKTOP);
  await screenshot('5c-unsubscribe.png');
}

// Step 9: the copy-ready button, and the example success page in every state it reaches offline.
async function exampleSuccessStates() {
  log('step 9: /example, and the success page awaiting payment, failed, not found, malformed');
  await goto(`${SHOP_URL}/example`, 'button example');
  await screenshot('14-example.png');
  await (await element('#checkout-form button[type=submit]', 'button example: the plain form')).click();
  await waitForUrl(/\/c\/pay\/cs_/, 'after the plain form post');
  await goto(`${SHOP_URL}/example`, 'button example (again)');
  await (await element('#checkout-fetch button[type=submit]', 'button example: the fetch button')).click();
  await waitForUrl(/\/c\/pay\/cs_/, 'after the fetch button');
  const session = page.url().match(/\/c\/pay\/(cs_[^/?#]+)/)[1];
  const payPage = page.url();
  await (await element('#email', 'checkout page email')).fill(`delayed+${RUN_ID}@example.com`);
  await (await element('#pay-delayed', 'checkout page "Pay with a delayed method"')).click();
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after paying with a delayed method');
  await waitForSuccessState('success page: a delayed payment', 'awaiting_payment', 'Your payment is being processed', { fatal: ['fulfilled'] });
  await screenshot('15-success-awaiting.png');

  await goto(payPage, 'the hosted page of the pending session');
  await (await element('#settle-failed', 'simulator "Payment fails"')).click();
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after settling as failed');
  await waitForSuccessState('success page: the delayed payment failed', 'payment_failed', 'Your payment did not go through', { fatal: ['fulfilled'] });
  const back = await (await element('#order-action a', 'success page "Back to the shop"')).getAttribute('href');
  const home = await page.locator('header.site a.merchant').getAttribute('href');
  if (!back || back !== home) {
    throw new E2EError('success page: "Back to the shop"', `the shop's URL (${home})`, `${back}`);
  }
  await screenshot('16-success-failed.png');

  for (const [query, state, shot] of [
    ['session_id=cs_test_doesnotexist', 'not_found', '17-success-not-found.png'],
    ['session_id=nope', 'invalid_request', '18-success-malformed.png'],
  ]) {
    await goto(`${SHOP_URL}/thanks?${query}`, `success page ?${query}`);
    await waitForSuccessState(`success page ?${query}`, state, 'We could not find this order');
    await screenshot(shot);
  }
  return session;
}

// The return page's statuses, once they reach `want` (a function of both).
async function waitForReturn(what, expected, want) {
  const seen = [];
  return poll(what, expected, async () => {
    const status = (await page.locator('#payment-status').textContent()).trim();
    const order = (await page.locator('#order-status').textContent()).trim();
    const retry = await page.locator('#retry').isVisible();
    const shown = `${status}/${order}${retry ? '/retry' : ''}`;
    if (seen[seen.length - 1] !== shown) seen.push(shown);
    return { ok: want(status, order, retry), found: `seen: ${seen.join(' -> ')}`, seen };
  });
}

async function payAsReturningCustomer(outboxUrl) {
  log('step 7: returning customer, saved card');
  await goto(`${SHOP_URL}/returning`, 'returning customer page');
  await (await element('#pay-returning', 'returning page Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/elements\/pay\?/, 'after "Pay as …"');
  const saved = await element('#saved-pm_demo_visa', 'the saved card on the Payment Element page');
  await saved.check({ timeout: ACTION_TIMEOUT });
  await screenshot('10-payment-element.png');
  await (await element('#pay', 'Payment Element Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/payments\/return\?payment_intent=pi_/, 'after paying with the saved card');
  const paid = new URL(page.url()).searchParams.get('payment_intent');
  await waitForReturn('return page: saved-card payment', '"succeeded" and order "fulfilled"', (s, o) => s === 'succeeded' && o === 'fulfilled');
  await screenshot('11-payment-return.png');

  log('step 8: returning customer, a delayed method that fails');
  await goto(`${SHOP_URL}/returning`, 'returning customer page (again)');
  await (await element('#pay-returning', 'returning page Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/elements\/pay\?/, 'after "Pay as …" (again)');
  await (await element('#pay-delayed-failure', 'Payment Element delayed-failure button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/payments\/return\?payment_intent=pi_/, 'after paying with a delayed method');
  const failed = new URL(page.url()).searchParams.get('payment_intent');
  const { seen } = await waitForReturn(
    'return page: late failure',
    '"requires_payment_method" with the retry link, after "processing"',
    (s, _o, retry) => s === 'requires_payment_method' && retry,
  );
  if (!seen.some((s) => s.startsWith('processing'))) {
    log(`note: the failure settled before the page first read "processing" (${seen.join(' -> ')})`);
  }
  await screenshot('12-payment-failed.png');

  await poll(
    'outbox: the pending and the retry emails',
    `one "your payment is on its way" and one "your payment did not go through" email to ${RETURNING_EMAIL}`,
    async () => {
      await goto(outboxUrl, 'outbox (returning customer)');
      const { emails } = await readOutbox();
      const pending = emailsMatching(emails, RETURNING_EMAIL, 'your payment is on its way');
      const retry = emailsMatching(emails, RETURNING_EMAIL, 'your payment did not go through');
      return { ok: pending.length === 1 && retry.length === 1, found: json(emails.map((m) => `${m.to} | ${m.subject}`)) };
    },
  );
  await sleep(SETTLE_MS);
  await goto(outboxUrl, 'outbox (returning customer, final)');
  const { emails } = await readOutbox();
  for (const [subject, count] of [['your payment is on its way', 1], ['your payment did not go through', 1], [CONFIRMATION_SUBJECT, 1]]) {
    const found = emailsMatching(emails, RETURNING_EMAIL, subject);
    if (found.length !== count) {
      throw new E2EError(`outbox: "${subject}" to the returning customer`, `${count} email(s)`, `${found.length}`);
    }
  }
  await screenshot('13-outbox-returning.png');
  return { paid, failed };
}

// The outbox's subscriptions and access rows.
async function readAccess() {
  const subscriptions = await page.locator('#subscriptions tr.subscription').evaluateAll((rows) =>
    rows.map((r) => ({
      id: (r.querySelector('td.subscription-id')?.textContent ?? '').trim(),
      status: (r.querySelector('td.status')?.textContent ?? '').trim(),
      access: (r.querySelector('td.access')?.textContent ?? '').trim(),
    })),
  );
  const grants = await page.locator('#access tr.grant').evaluateAll((rows) =>
    rows.map((r) => ({
      product: (r.querySelector('td.product')?.textContent ?? '').trim(),
      active: (r.querySelector('td.active')?.textContent ?? '').trim(),
      source: (r.querySelector('td.source')?.textContent ?? '').trim(),
    })),
  );
  return { subscriptions, grants };
}

async function subscribeAndCancel(outboxUrl) {
  log('step 6: subscribe (price_plan), then cancel');
  await goto(`${SHOP_URL}/`, 'storefront (subscription)');
  const subscribe = await element('button[data-price="price_plan"][data-mode="subscription"]', 'storefront "Subscribe"');
  await subscribe.click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/c\/pay\/cs_/, 'after "Subscribe"');
  await (await element('#email', 'checkout page email')).fill(SUBSCRIBER_EMAIL, { timeout: ACTION_TIMEOUT });
  await (await element('#name', 'checkout page name')).fill('Sue Scriber', { timeout: ACTION_TIMEOUT });
  await (await element('#pay', 'checkout page Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after paying the subscription');
  await waitForSuccessState('thanks page: the subscription order', 'fulfilled', 'Thank you! Your order is confirmed.');

  // The newest subscription row is this one (the outbox lists newest first).
  const granted = await poll(
    'outbox: the subscription active and its product granted',
    'a #subscriptions row "active" with access "granted until …" and an active prod_plan grant from it',
    async () => {
      await goto(outboxUrl, 'outbox (subscription)');
      const { subscriptions, grants } = await readAccess();
      const sub = subscriptions[0];
      const grant = sub && grants.find((g) => g.source === sub.id && g.product === 'prod_plan');
      const ok = !!sub && sub.status === 'active' && sub.access.startsWith('granted until') && grant?.active === 'yes';
      return { ok, sub, found: json({ subscriptions: subscriptions.slice(0, 2), grants: grants.slice(0, 3) }) };
    },
  );
  const subscriptionId = granted.sub.id;
  log(`subscription ${subscriptionId} active, access granted`);
  await screenshot('7-subscription-granted.png');

  const billing = await page.locator('#billing').getAttribute('href');
  await goto(billing, 'simulator billing page');
  const cancel = await element(`button[value="cancel:${subscriptionId}"]`, 'billing page Cancel button');
  await cancel.click({ timeout: ACTION_TIMEOUT });
  await page.locator('#done').first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT });
  await screenshot('8-billing-canceled.png');

  await poll(
    'outbox: the subscription canceled and its access revoked',
    `${subscriptionId} "canceled" with access "revoked", and its prod_plan grant inactive`,
    async () => {
      await goto(outboxUrl, 'outbox (after cancel)');
      const { subscriptions, grants } = await readAccess();
      const sub = subscriptions.find((s) => s.id === subscriptionId);
      const grant = grants.find((g) => g.source === subscriptionId && g.product === 'prod_plan');
      const ok = sub?.status === 'canceled' && sub?.access === 'revoked' && grant?.active === 'no';
      return { ok, found: json({ sub, grant }) };
    },
  );
  await screenshot('9-subscription-revoked.png');
  return subscriptionId;
}

// -------------------------------------------------------------------- main --

function printConsoleErrors() {
  if (consoleErrors.length === 0) {
    log('browser console errors: none');
  } else {
    log(`browser console errors (${consoleErrors.length}):`);
    for (const e of consoleErrors) console.log(`  - ${e}`);
  }
  if (failedRequests.length > 0) {
    log(`failed requests (${failedRequests.length}):`);
    for (const r of failedRequests) console.log(`  - ${r}`);
  }
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!existsSync(CHROMIUM)) {
    throw new E2EError(
      'Chromium not found',
      `an executable at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)`,
      'no such file',
    );
  }

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    timeout: STEP_TIMEOUT,
  });
  let summary;
  let failure;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(ACTION_TIMEOUT);
    page.setDefaultNavigationTimeout(STEP_TIMEOUT);
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const loc = msg.location();
      // Browsers always ask for /favicon.ico; a 404 there is noise, not a page error.
      if (/\/favicon\.ico$/.test(loc?.url ?? '')) return;
      // The success page's not-found steps ask for unknown and malformed ids on purpose.
      if (EXPECTED_FAILURES.some((re) => re.test(loc?.url ?? ''))) return;
      consoleErrors.push(`${msg.text()}${loc?.url ? ` (${loc.url}:${loc.lineNumber})` : ''} [on ${page.url()}]`);
    });
    page.on('pageerror', (err) => consoleErrors.push(`uncaught: ${err.message} [on ${page.url()}]`));
    page.on('requestfailed', (req) => {
      const why = req.failure()?.errorText ?? 'failed';
      // A navigation that replaces a still-loading request shows up as ERR_ABORTED; not interesting.
      if (why !== 'net::ERR_ABORTED') failedRequests.push(`${req.method()} ${req.url()}: ${why}`);
    });

    summary = await run();
  } catch (e) {
    failure = e;
    if (page) {
      try {
        await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true, timeout: ACTION_TIMEOUT });
        writeFileSync(path.join(ARTIFACTS, 'failure.html'), await page.content());
        log(`failure screenshot ${path.join(ARTIFACTS, 'failure.png')} (page HTML in failure.html)`);
      } catch (se) {
        log(`could not save failure screenshot: ${se.message.split('\n')[0]}`);
      }
    }
  } finally {
    printConsoleErrors();
    await browser.close().catch(() => {});
  }
  if (failure) throw failure;
  console.log(summary);
}

const watchdog = setTimeout(() => {
  console.error(`e2e: FAILED: whole run exceeded ${WATCHDOG_MS / 1000}s (watchdog)`);
  process.exit(2);
}, WATCHDOG_MS);
watchdog.unref();

main().then(
  () => process.exit(0),
  (e) => {
    if (e instanceof E2EError) {
      console.error(`e2e: FAILED: ${e.message}`);
    } else {
      console.error(`e2e: FAILED with an unexpected error: ${e.stack || e}`);
    }
    console.error(`e2e: artifacts in ${ARTIFACTS}`);
    process.exit(1);
  },
);
