'use strict';
// The shopper's side in a real browser: headless Chromium (Debian's chromium, driven by
// puppeteer-core, which downloads no browser) pays on the sandbox's hosted checkout page.
// tests/integration/browser_checkout_test.cc starts the stack (redis-server, paykka-sandbox, two
// payorchd replicas with mTLS) and runs `node --test` on this file with, in the environment:
//   PAYORCH_TARGET        replica 0: receives CreateCheckout and, as notify_url, PayKKa's webhooks
//   PAYORCH_OTHER_TARGET  replica 1: the caller that watches for the outcome
//   PAYORCH_WEBHOOK_URL   replica 0's webhook URL
//   PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID, PAYORCH_CA/CERT/KEY (the "admin" caller),
//   PAYORCH_CHROMIUM (the browser), PAYORCH_ARTIFACT_DIR (screenshots go there).
// The shop behind return_url is a tiny HTTP server of this test on loopback, so a redirect is
// seen both by the browser (its URL) and by the shop (the request it received).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const puppeteer = require('puppeteer-core');
const { PayorchClient, securityFromEnv } = require('../../clients/node/payorch');

const env = process.env;
const artifacts = env.PAYORCH_ARTIFACT_DIR;
fs.mkdirSync(artifacts, { recursive: true });
const security = securityFromEnv(env);
const deadline = (ms = 15000) => ({ deadline: new Date(Date.now() + ms) });

let browser; let shop; let shopUrl; let receiver; let watcher;
const shopHits = [];

test.before(async () => {
  shop = http.createServer((req, res) => {
    shopHits.push(req.url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Shop</title><h1 id="shop">Thank you (${req.url})</h1>`);
  });
  await new Promise((resolve) => shop.listen(0, '127.0.0.1', resolve));
  shopUrl = `http://127.0.0.1:${shop.address().port}`;
  receiver = new PayorchClient(env.PAYORCH_TARGET, { security });
  watcher = new PayorchClient(env.PAYORCH_OTHER_TARGET, { security });
  // As root, chromium refuses to start without --no-sandbox.
  browser = await puppeteer.launch({ executablePath: env.PAYORCH_CHROMIUM, headless: true,
    args: ['--no-sandbox'], timeout: 20000 });
});

test.after(async () => {
  if (browser) await browser.close();
  if (shop) shop.close();
  if (receiver) receiver.close();
  if (watcher) watcher.close();
});

let seq = 0;
// CreateCheckout over mTLS on replica 0, PayKKa's webhooks going to replica 0 too.
async function createCheckout(name, amount, currency) {
  const transId = `browser-${name}-${Date.now()}-${++seq}`;
  const returnUrl = `${shopUrl}/return/${transId}`;
  const created = await receiver.createCheckout({
    merchant_id: env.PAYORCH_MERCHANT_ID, trans_id: transId, payment_type: 'PAYMENT_TYPE_PURCHASE',
    session_mode: 'SESSION_MODE_HOSTED', amount, currency, return_url: returnUrl,
    notify_url: env.PAYORCH_WEBHOOK_URL,
    expire_time: { seconds: Math.floor(Date.now() / 1000) + 1800, nanos: 0 },
  }, deadline());
  assert.match(created.session_url, /^http:\/\/127\.0\.0\.1:\d+\/checkout\//);
  return { transId, returnUrl, sessionUrl: created.session_url, sessionId: created.session_id };
}

async function screenshot(page, name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

// Replaces the card field's value and submits, waiting for the page that answers.
async function payWith(page, card) {
  await page.$eval('input[name=card_no]', (el) => { el.value = ''; });
  await page.type('input[name=card_no]', card);
  await Promise.all([page.waitForNavigation({ timeout: 15000 }), page.click('button[type=submit]')]);
}

async function opensCheckout(page, c, shownAmount, name) {
  const res = await page.goto(c.sessionUrl, { timeout: 15000 });
  assert.equal(res.status(), 200);
  assert.equal(await page.$eval('#amount', (el) => el.textContent), shownAmount);
  await screenshot(page, `${name}-1-checkout`);
}

async function landsOnReturnUrl(page, c, name) {
  assert.equal(page.url(), c.returnUrl, 'the shopper is sent to return_url');
  assert.match(await page.$eval('#shop', (el) => el.textContent), /Thank you/);
  assert.ok(shopHits.includes(new URL(c.returnUrl).pathname), 'the shop served return_url');
  await screenshot(page, `${name}-9-return`);
}

// A caller on replica 1 watches the order (WatchOrder by session_id) while the shopper pays;
// PayKKa's webhooks go to replica 0. Resolves once the stream is open (its first message, the
// current state, has arrived); `done` resolves to every message when the stream ends (it ends
// after a final status), bounded by a 40 s deadline.
async function watchOnOtherReplica(c) {
  const call = watcher.stub.WatchOrder(
    { merchant_id: env.PAYORCH_MERCHANT_ID, session_id: c.sessionId },
    { deadline: new Date(Date.now() + 40000) });
  const messages = [];
  let opened;
  const first = new Promise((resolve, reject) => { opened = { resolve, reject }; });
  const done = new Promise((resolve, reject) => {
    call.on('data', (m) => { messages.push(m); if (messages.length === 1) opened.resolve(m); });
    call.on('error', (e) => { opened.reject(e); reject(e); });
    call.on('end', () => resolve(messages));
  });
  done.catch(() => {}); // awaited by the caller; no unhandled rejection meanwhile
  return { first: await first, done };
}

// The watch on replica 1 ends with `status`, delivered by an event (a message with a resume
// token: it comes from the webhook replica 0 received, not from the stream's first query), and
// the sandbox's delivery log says replica 0 acknowledged that order's webhook.
async function otherReplicaSaw(c, watch, status) {
  const messages = await watch.done;
  const last = messages[messages.length - 1];
  assert.equal(last.order && last.order.status, status,
    `replica 1's WatchOrder of ${c.transId}: ${JSON.stringify(messages)}`);
  assert.equal(last.order.session_id, c.sessionId);
  assert.notEqual(last.resume_token, '', 'the final state came as an event, not the first query');
  const hooks = await (await fetch(`${env.PAYORCH_SANDBOX_URL}/sandbox/webhooks`)).json();
  const list = Array.isArray(hooks) ? hooks : hooks.deliveries;
  const mine = list.filter((d) => d.order_id === last.order.order_id);
  assert.ok(mine.some((d) => d.url === env.PAYORCH_WEBHOOK_URL && d.delivered),
    `the webhook of ${last.order.order_id} was acknowledged by replica 0: ${JSON.stringify(mine)}`);
  return last.order;
}

test('pays with the success card and returns to the shop', async () => {
  const c = await createCheckout('success', 1999, 'USD');
  const page = await browser.newPage();
  const watch = await watchOnOtherReplica(c);
  assert.ok(!watch.first.order, 'not paid yet: the first message is the session');
  assert.equal(watch.first.resume_token, '');
  await opensCheckout(page, c, '19.99 USD', 'success');
  await payWith(page, '4242 4242 4242 4242');
  await landsOnReturnUrl(page, c, 'success');
  const order = await otherReplicaSaw(c, watch, 'ORDER_STATUS_SUCCESS');
  assert.equal(String(order.amount), '1999');
  await page.close();
});

test('pays with the 3DS card through its challenge page', async () => {
  const c = await createCheckout('3ds', 1500, 'JPY');
  const page = await browser.newPage();
  const watch = await watchOnOtherReplica(c);
  await opensCheckout(page, c, '1500 JPY', '3ds');
  await payWith(page, '4000000000003220');
  assert.match(page.url(), /\/checkout\/3ds\/[^/]+$/, 'the shopper is at the challenge');
  await screenshot(page, '3ds-2-challenge');
  await Promise.all([page.waitForNavigation({ timeout: 15000 }),
    page.click('button[value=SUCCESS]')]);
  await landsOnReturnUrl(page, c, '3ds');
  await otherReplicaSaw(c, watch, 'ORDER_STATUS_SUCCESS');
  await page.close();
});

test('a declined card shows the reason, then the retry pays', async () => {
  const c = await createCheckout('decline', 1234, 'KWD');
  const page = await browser.newPage();
  const declineWatch = await watchOnOtherReplica(c);
  await opensCheckout(page, c, '1.234 KWD', 'decline');
  await payWith(page, '4000000000000002');
  assert.equal(new URL(page.url()).pathname, new URL(c.sessionUrl).pathname);
  assert.match(await page.$eval('#error', (el) => el.textContent), /declined: Invalid Card/);
  assert.equal(await page.$eval('#amount', (el) => el.textContent), '1.234 KWD');
  await screenshot(page, 'decline-2-declined');
  // The watch on replica 1 ends with the decline (a final status of that order).
  const declined = await otherReplicaSaw(c, declineWatch, 'ORDER_STATUS_FAILURE');
  assert.equal(declined.error_code, '2099');
  await payWith(page, '');
  assert.match(await page.$eval('#error', (el) => el.textContent), /Enter a card number/);
  await screenshot(page, 'decline-3-empty');
  await payWith(page, '5555 5555 5555 4444');
  await landsOnReturnUrl(page, c, 'decline');
  // The retry is a new order of the same session: a new watch on replica 1 reads its state.
  const retryWatch = await watchOnOtherReplica(c);
  assert.equal(retryWatch.first.order && retryWatch.first.order.status, 'ORDER_STATUS_SUCCESS');
  assert.notEqual(retryWatch.first.order.order_id, declined.order_id);
  assert.equal((await retryWatch.done).length, 1, 'a final state ends the stream');
  await page.close();
});
