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
//  10. A physical order: 2 mugs (quantity changed on the hosted page) and the optional tea
//      box, shipped to France by Express, with a gift note and the terms accepted. The
//      success page shows it fulfilled; the session's total (GET /checkout/complete) equals
//      the one computed here from the storefront's and the hosted page's amounts with French
//      VAT; the confirmation email shows the address, "Express shipping", "VAT 20%" and that
//      total; the outbox's orders table shows FR, the rate and the tax.
//  11. Stock: a cart of every poster left (form post) opens; the storefront then shows
//      "Out of stock" with its button disabled, a fetch for one more answers 409
//      out_of_stock naming price_poster, the merchant's expire call (Authorization: Bearer
//      MERCHANT_API_KEY, from node) answers the session expired, and the storefront shows
//      the posters left again.
//  12. /custom: a ui_mode=custom session paid through the simulator's stand-in for
//      Stripe.js's custom Checkout lands on /thanks, fulfilled.
//
// The demo shop's policy (examples/shop-policy.json) has every payment form ask for a
// shipping address, a rate, a phone and the terms: fillCheckout() fills them, on the hosted
// page and in frames alike.

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
const PHYSICAL_EMAIL = `physical+${RUN_ID}@example.com`;
const CUSTOM_EMAIL = `custom+${RUN_ID}@example.com`;
const GIFT_NOTE = 'Happy birthday, Lou!';
// The merchant's server key (the Makefile's dev default), for the expire route.
const MERCHANT_API_KEY = process.env.MERCHANT_API_KEY || 'mk_local_development_merchant_key_not_for_production';
// Where the demo shop ships (examples/shop-policy.json), and the address every form gets.
const SHIPS_TO = 'FR, DE, BE';
const ADDRESS = { name: 'Ada Buyer', line1: '12 rue des Lilas', postal_code: '75011', city: 'Paris', country: 'FR' };
const PHONE_NUMBER = '+33 6 12 34 56 78';
// French VAT in basis points, as the simulator's automatic tax computes it
// (infra/stripe-simulator/src/tax.rs): per line, rounded half up to the cent.
const VAT_FR_BPS = 2000;

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

// Fills a Checkout Session's payment form, on the simulator's hosted page or in a frame
// (the embedded and custom pages): `target` is the page or a FrameLocator. Besides email
// and name, what the shop policy asks of every session: the shipping address, a phone, the
// terms, and in payment mode a shipping rate (the first is preselected; `rate` picks one).
// `quantities` sets adjustable line items by index, `optional` adds optional items by price.
async function fillCheckout(target, what, { email, name, subscription = false, rate, giftnote, quantities = {}, optional = [], address = ADDRESS } = {}) {
  const field = (id) => target.locator(`#${id}`);
  const fill = async (id, value) => {
    try {
      await field(id).fill(String(value), { timeout: STEP_TIMEOUT });
    } catch (e) {
      if (e.name !== 'TimeoutError') throw e;
      throw new E2EError(`${what}: no #${id} to fill within ${STEP_TIMEOUT / 1000}s`, `a visible #${id}`, await whereAmI());
    }
  };
  await fill('email', email);
  if (name) await fill('name', name);
  const present = async (id) => (await field(id).count()) > 0;
  for (const id of ['shipping_name', 'phone', 'tos']) {
    if (!(await present(id))) {
      throw new E2EError(`${what}: the shop policy's fields`, `#${id} on the form (shipping address, phone, terms)`, await whereAmI());
    }
  }
  await fill('shipping_name', address.name);
  await fill('shipping_line1', address.line1);
  await fill('shipping_postal_code', address.postal_code);
  await fill('shipping_city', address.city);
  await field('shipping_country').selectOption(address.country, { timeout: ACTION_TIMEOUT });
  await fill('phone', PHONE_NUMBER);
  const rates = await target.locator('input[name="shipping_rate"]').count();
  if (subscription ? rates !== 0 : rates === 0) {
    throw new E2EError(`${what}: shipping rates`, subscription ? 'none in subscription mode' : 'the policy\'s rates offered', `${rates} rate(s)`);
  }
  if (rate) await field(`shipping_rate_${rate}`).check({ timeout: ACTION_TIMEOUT });
  if (giftnote !== undefined) await fill('custom_giftnote', giftnote);
  for (const [index, quantity] of Object.entries(quantities)) await fill(`quantity_${index}`, quantity);
  for (const price of optional) await field(`optional_${price}`).check({ timeout: ACTION_TIMEOUT });
  await field('tos').check({ timeout: ACTION_TIMEOUT });
}

// Amounts as the pages print them ("15.00 EUR"), in cents, and back.
function cents(text, what) {
  const m = String(text).match(/(\d+)\.(\d{2})\s*EUR/);
  if (!m) throw new E2EError(`${what}: an amount`, 'text with "<units>.<cents> EUR"', `"${shorten(text)}"`);
  return Number(m[1]) * 100 + Number(m[2]);
}
const amount = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')} EUR`;

// One product card of the storefront: its price, terms, stock line and button.
async function readCard(price) {
  const card = page.locator(`form.product[data-price="${price}"]`);
  try {
    await card.waitFor({ state: 'visible', timeout: ACTION_TIMEOUT });
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    throw new E2EError(`storefront: the ${price} card`, `a form.product[data-price="${price}"]`, await whereAmI());
  }
  return card.evaluate((form) => {
    const stock = form.querySelector('.stock');
    return {
      amount: (form.querySelector('h2 + p')?.textContent ?? '').trim(),
      terms: [...form.querySelectorAll('.terms li')].map((li) => li.textContent.trim()),
      stock: stock ? stock.textContent.trim() : null,
      left: stock ? Number(stock.dataset.left) : null,
      disabled: form.querySelector('button[type=submit]')?.disabled ?? null,
    };
  });
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
      // The row under a physical order: where it ships, the rate, the tax.
      ...((details) => ({
        shipTo: (details?.querySelector('.ship-to')?.textContent ?? '').trim(),
        shipping: (details?.querySelector('.rate')?.textContent ?? '').trim(),
        tax: (details?.querySelector('.tax')?.textContent ?? '').trim(),
      }))(r.nextElementSibling?.classList.contains('order-details') ? r.nextElementSibling : null),
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
  const mugCard = await readCard('price_mug');
  if (!mugCard.terms.some((t) => t.toLowerCase().startsWith(`ships to ${SHIPS_TO.toLowerCase()}`))) {
    throw new E2EError('storefront: the mug card', `a term "Ships to ${SHIPS_TO}…" (the shop policy)`, json(mugCard.terms));
  }
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
  await fillCheckout(page, 'checkout page', { email: BUYER_EMAIL, name: BUYER_NAME });
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
  await fillCheckout(frame, 'embedded checkout frame', { email: `embedded+${RUN_ID}@example.com` });
  await frame.locator('#pay').click();
  await poll('embedded checkout: the success page in the frame', '#order-message data-state "fulfilled"', async () => {
    const found = await readSuccess(frame);
    return { ok: found.state === 'fulfilled', found: json(found) };
  });
  await screenshot('6-embedded.png');

  const subscription = await subscribeAndCancel(outboxUrl);
  const returning = await payAsReturningCustomer(outboxUrl);
  const delayed = await exampleSuccessStates();
  const physical = await physicalOrder(outboxUrl);
  const stock = await posterStock();
  const custom = await customPage();

  return `e2e: paid order fulfilled (${sessionId}), ${recovery.length} recovery email (decision done, unsubscribe page opened), ${confirmation.length} confirmation email, embedded order fulfilled, ${subscription} granted then revoked on cancel, returning customer paid with a saved card (${returning.paid}) and retried after a late failure (${returning.failed}), example success page awaiting then failed (${delayed}), not found and malformed ids shown as not found, physical order to ${ADDRESS.country} by Express with the tea box fulfilled at ${amount(physical.total)} incl. ${amount(physical.tax)} VAT as emailed (${physical.session}), ${stock.units} posters sold out then back after expire (${stock.session}), custom payment page order fulfilled (${custom})`;
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
  await fillCheckout(page, 'checkout page (delayed)', { email: `delayed+${RUN_ID}@example.com` });
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

// Step 10: a physical order, its amounts computed here from what the pages offer.
async function physicalOrder(outboxUrl) {
  log('step 10: a physical order: 2 mugs to France by Express, a gift note, the tea box added');
  await goto(`${SHOP_URL}/`, 'storefront (physical order)');
  const mug = cents((await readCard('price_mug')).amount, 'the mug card');
  await clickBuyNow('price_mug');
  const session = page.url().match(/\/c\/pay\/(cs_[^/?#]+)/)[1];
  const express = cents(await page.locator('label:has(#shipping_rate_shr_express)').innerText({ timeout: ACTION_TIMEOUT }), 'the Express rate');
  const tea = cents(await page.locator('label:has(#optional_price_tea)').innerText({ timeout: ACTION_TIMEOUT }), 'the optional tea box');
  await fillCheckout(page, 'hosted page (physical order)', {
    email: PHYSICAL_EMAIL,
    name: ADDRESS.name,
    rate: 'shr_express',
    giftnote: GIFT_NOTE,
    quantities: { 0: 2 },
    optional: ['price_tea'],
  });
  await screenshot('19-physical-checkout.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('hosted page with shipping at 390 px');
  await screenshot('19-physical-checkout-390.png');
  await page.setViewportSize(DESKTOP);
  await (await element('#pay', 'checkout page Pay button')).click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after paying the physical order');
  await waitForSuccessState('thanks page: the physical order', 'fulfilled', 'Thank you! Your order is confirmed.', { fatal: ['payment_failed'] });

  // Each line taxed on its own, half up, as Stripe rounds per line.
  const taxOn = (c) => Math.floor((c * VAT_FR_BPS + 5000) / 10000);
  const lines = [2 * mug, tea, express];
  const tax = lines.map(taxOn).reduce((a, b) => a + b, 0);
  const total = lines.reduce((a, b) => a + b, 0) + tax;
  log(`expected: 2 x ${amount(mug)} + ${amount(tea)} + ${amount(express)} + VAT ${amount(tax)} = ${amount(total)}`);
  const landing = await fetch(`${SHOP_URL}/checkout/complete?session_id=${encodeURIComponent(session)}`);
  const order = await landing.json();
  const bought = (order.line_items ?? []).map((l) => `${l.price ?? l.description} x ${l.quantity}`);
  if (order.amount_total !== total || !bought.includes('price_mug x 2') || !bought.includes('price_tea x 1')) {
    throw new E2EError('GET /checkout/complete: the physical order', `amount_total ${total} for price_mug x 2 and price_tea x 1`, `HTTP ${landing.status} amount_total ${order.amount_total}, ${json(bought)}`);
  }
  const shownTotal = await page.locator('#order-total').innerText({ timeout: ACTION_TIMEOUT });
  if (!shownTotal.includes(amount(total).split(' ')[0])) {
    throw new E2EError('thanks page: the physical order\'s total', `#order-total with ${amount(total)}`, `"${shorten(shownTotal)}"`);
  }
  await screenshot('19-physical-success.png');

  // The confirmation email and the orders table.
  const found = await poll('outbox: the physical order\'s confirmation and its row', `a "${CONFIRMATION_SUBJECT}" email to ${PHYSICAL_EMAIL} and a #orders row for ${session}`, async () => {
    await goto(outboxUrl, 'outbox (physical order)');
    const box = await readOutbox();
    const email = emailsMatching(box.emails, PHYSICAL_EMAIL, CONFIRMATION_SUBJECT);
    const row = box.orders.find((o) => o.id === session);
    return { ok: email.length === 1 && row?.state === 'fulfilled', email: email[0], row, found: json({ email, row }) };
  });
  const { row } = found;
  if (row.shipTo !== ADDRESS.country || !row.shipping.includes('Express shipping') || !row.tax.includes('VAT 20%') || !row.tax.includes(amount(tax))) {
    throw new E2EError('outbox: the physical order\'s row', `ships to ${ADDRESS.country}, "Express shipping", "VAT 20% ${amount(tax)}"`, json(row));
  }
  await page.setViewportSize(PHONE);
  await expectNoOverflow('outbox with shipped orders at 390 px');
  await screenshot('19-outbox-shipped-390.png');
  await page.setViewportSize(DESKTOP);

  await goto(`${SHOP_URL}${found.email.href}`, 'the physical order\'s confirmation email');
  const text = await (await element('#text-part', 'confirmation email text part')).innerText();
  const html = await page.frameLocator('#html-part').locator('body').innerText({ timeout: ACTION_TIMEOUT });
  for (const [part, body] of [['text', text], ['HTML', html]]) {
    for (const want of [ADDRESS.line1, 'Express shipping', 'VAT 20%', GIFT_NOTE, amount(tax), amount(total)]) {
      if (!body.includes(want)) {
        throw new E2EError(`confirmation email (${part} part): the physical order`, `"${want}" (address, rate, tax line, gift note, tax and total)`, shorten(body, 800));
      }
    }
  }
  const emailed = text.match(/^Total:\s*(.+)$/m);
  if (!emailed || cents(emailed[1], 'the email\'s total') !== total) {
    throw new E2EError('confirmation email: the total', `"Total: ${amount(total)}", the session's`, emailed ? emailed[0] : shorten(text));
  }
  await page.waitForFunction(() => document.querySelector('#html-part')?.clientHeight > 100, null, { timeout: ACTION_TIMEOUT });
  await screenshot('19-physical-email.png');
  await page.setViewportSize(PHONE);
  await sleep(200); // the frame is sized again on resize
  await expectNoOverflow('physical order email at 390 px');
  await expectFrameUnclipped('physical order email at 390 px');
  await screenshot('19-physical-email-390.png');
  await page.setViewportSize(DESKTOP);
  return { session, total, tax };
}

// Step 11: the poster's stock runs out with one open cart and comes back when it expires.
async function posterStock() {
  log('step 11: stock: every poster in one cart, sold out, then back after the expire call');
  await goto(`${SHOP_URL}/`, 'storefront (stock)');
  const before = await readCard('price_poster');
  if (!(before.left > 0) || before.stock !== `${before.left} left` || before.disabled) {
    throw new E2EError('storefront: the poster card', 'a stock line "N left" (make dev seeds 3) and its button enabled', json(before));
  }
  const units = before.left;
  await page.locator('form.product[data-price="price_poster"] input[name="quantity"]').fill(String(units), { timeout: ACTION_TIMEOUT });
  await clickBuyNow('price_poster');
  const session = page.url().match(/\/c\/pay\/(cs_[^/?#]+)/)[1];
  log(`cart of ${units} poster(s): ${session}`);

  await goto(`${SHOP_URL}/`, 'storefront (poster sold out)');
  const empty = await readCard('price_poster');
  if (empty.stock !== 'Out of stock' || empty.disabled !== true) {
    throw new E2EError('storefront: the poster with every unit in a cart', '"Out of stock" and its button disabled', json(empty));
  }
  await screenshot('20-storefront-out-of-stock.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('storefront with stock at 390 px');
  await screenshot('20-storefront-out-of-stock-390.png');
  await page.setViewportSize(DESKTOP);

  const refused = await page.evaluate(async () => {
    const response = await fetch('/checkout/sessions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ line_items: [{ price: 'price_poster', quantity: 1 }], mode: 'payment' }),
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  });
  const error = refused.body?.error;
  if (refused.status !== 409 || error?.code !== 'out_of_stock' || !/price_poster/.test(error?.message ?? '')) {
    throw new E2EError('POST /checkout/sessions for one more poster', '409 out_of_stock, the message naming price_poster', json(refused));
  }

  // The merchant's server, not the browser: the key never reaches a page.
  const expire = await fetch(`${SHOP_URL}/checkout/sessions/${encodeURIComponent(session)}/expire`, {
    method: 'POST',
    headers: { authorization: `Bearer ${MERCHANT_API_KEY}` },
  });
  const expired = await expire.json().catch(() => null);
  if (expire.status !== 200 || expired?.id !== session || expired?.status !== 'expired') {
    throw new E2EError('POST /checkout/sessions/{id}/expire', `200 {"id":"${session}","status":"expired"}`, `HTTP ${expire.status} ${json(expired)}`);
  }
  await poll('storefront: the posters back once their cart expired', `"${units} left" with the button enabled`, async () => {
    await goto(`${SHOP_URL}/`, 'storefront (poster back)');
    const back = await readCard('price_poster');
    return { ok: back.stock === `${units} left` && back.disabled === false, found: json(back) };
  });
  await screenshot('20-storefront-back-in-stock.png');
  return { session, units };
}

// Step 12: the custom payment page (ui_mode=custom), offline through the simulator's stand-in.
async function customPage() {
  log('step 12: /custom, a ui_mode=custom session paid in the page');
  await goto(`${SHOP_URL}/custom`, 'custom payment page');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('custom payment page at 390 px');
  await screenshot('21-custom-390.png');
  await page.setViewportSize(DESKTOP);
  await (await element('#start', 'custom page start button')).click();
  const frame = page.frameLocator('#checkout iframe');
  await fillCheckout(frame, 'custom payment form', { email: CUSTOM_EMAIL, name: 'Cass Custom' });
  await screenshot('21-custom.png');
  await page.setViewportSize(PHONE);
  await expectNoOverflow('custom payment page with its form at 390 px');
  await screenshot('21-custom-form-390.png');
  await page.setViewportSize(DESKTOP);
  await frame.locator('#pay').click({ timeout: ACTION_TIMEOUT });
  await waitForUrl(/\/thanks\?session_id=cs_/, 'after paying on the custom page');
  if (!page.url().startsWith(`${SHOP_URL}/thanks`)) {
    throw new E2EError('after paying on the custom page', `the page itself at ${SHOP_URL}/thanks?session_id=cs_…`, page.url());
  }
  const session = new URL(page.url()).searchParams.get('session_id');
  await waitForSuccessState('thanks page: the custom page\'s order', 'fulfilled', 'Thank you! Your order is confirmed.', { fatal: ['payment_failed'] });
  await screenshot('22-custom-success.png');
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
  await fillCheckout(page, 'checkout page (subscription)', { email: SUBSCRIBER_EMAIL, name: 'Sue Scriber', subscription: true });
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
      // The stock step asks for one poster more than is left, on purpose.
      if (/\/checkout\/sessions$/.test(loc?.url ?? '') && /status of 409/.test(msg.text())) return;
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
