'use strict';
// Integration test against a running stack (redis-server, paykka-sandbox, payorchd).
// tests/integration/client_libraries_test.cc starts one and runs `node --test` on this file with
// its addresses in the environment: PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID,
// PAYORCH_CLIENT_KEY, and payorchd's mTLS material: PAYORCH_CA, PAYORCH_CERT, PAYORCH_KEY (a caller
// allowed everything) and PAYORCH_LIMITED_CERT, PAYORCH_LIMITED_KEY (allowed CreateCheckout,
// GetSessionStatus and GetOrder for the merchant only).
const test = require('node:test');
const assert = require('node:assert/strict');
const { PayorchClient, errorDetails, securityFromEnv, RETRYABLE_REASONS } = require('../payorch');

const { PAYORCH_TARGET: target, PAYORCH_SANDBOX_URL: sandbox, PAYORCH_MERCHANT_ID: merchant,
  PAYORCH_CLIENT_KEY: clientKey } = process.env;
const skip = !(target && sandbox && merchant) && 'no stack: set PAYORCH_TARGET, PAYORCH_SANDBOX_URL, PAYORCH_MERCHANT_ID';

// The sandbox's control API; the decoded JSON answer.
async function control(method, path, body) {
  const res = await fetch(sandbox + path, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  assert.ok(res.ok, `sandbox ${method} ${path}: HTTP ${res.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

const pay = (sessionId) => control('POST', `/sandbox/sessions/${sessionId}/pay`, { outcome: 'SUCCESS' });
let seq = 0;
const transId = (prefix) => `${prefix}-${Date.now()}-${++seq}`;
const checkout = (trans) => ({
  merchant_id: merchant, trans_id: trans, payment_type: 'PAYMENT_TYPE_PURCHASE',
  session_mode: 'SESSION_MODE_DROP_IN', amount: 1999, currency: 'USD',
  return_url: 'https://shop.example/return',
  expire_time: { seconds: Math.floor(Date.now() / 1000) + 1800, nanos: 0 },
});
const inAMinute = () => ({ deadline: new Date(Date.now() + 60000) });

// A client as the caller in PAYORCH_CA/PAYORCH_CERT/PAYORCH_KEY unless options.security says otherwise.
function withClient(options, body) {
  return async () => {
    const client = new PayorchClient(target, { security: securityFromEnv(), ...options });
    try { await body(client); } finally { client.close(); }
  };
}

test('checkout, pay, GetOrder SUCCESS, replay', { skip }, withClient({}, async (client) => {
  const request = checkout(transId('node'));
  const created = await client.createCheckout(request, inAMinute());
  assert.match(created.session_id, /^CS/);
  assert.equal(created.client_key, clientKey);
  await pay(created.session_id);

  const { order } = await client.getOrder({ merchant_id: merchant, trans_id: request.trans_id }, inAMinute());
  assert.equal(order.status, 'ORDER_STATUS_SUCCESS');
  assert.equal(order.amount, '1999');
  assert.equal(order.session_id, created.session_id);

  const replay = await client.createCheckout(request, inAMinute());
  assert.equal(replay.session_id, created.session_id);
}));

test('an invalid request reports every field violation and is not retried', { skip }, async () => {
  let retries = 0;
  await withClient({ onRetry: () => { retries++; } }, async (client) => {
    const request = { ...checkout(transId('nodebad')), amount: 0, currency: 'EURO' };
    const err = await client.createCheckout(request, inAMinute()).then(() => null, (e) => e);
    const d = errorDetails(err);
    assert.ok(d, `expected a gRPC error, got ${err}`);
    assert.equal(d.codeName, 'INVALID_ARGUMENT');
    assert.equal(d.reason, 'INVALID_FIELD');
    assert.equal(d.domain, 'payorch');
    const fields = d.fieldViolations.map((v) => v.field);
    assert.ok(fields.includes('amount') && fields.includes('currency'), JSON.stringify(d.fieldViolations));
    assert.ok(d.fieldViolations.every((v) => v.description));
  })();
  assert.equal(retries, 0);
});

test('ChargeRecurring after a first RECURRING payment', { skip }, withClient({}, async (client) => {
  const first = {
    ...checkout(transId('noderec')), payment_type: 'PAYMENT_TYPE_RECURRING',
    payment: { store_payment_method: true, token_usage: 'TOKEN_USAGE_SUBSCRIPTION', shopper_reference: 'shopper-node' },
  };
  const created = await client.createCheckout(first, inAMinute());
  await pay(created.session_id);
  const { order: paid } = await client.getOrder({ merchant_id: merchant, session_id: created.session_id }, inAMinute());
  assert.ok(paid.token && paid.recurring_agreement_id, JSON.stringify(paid));

  const charge = {
    merchant_id: merchant, trans_id: transId('nodecharge'), amount: 990, currency: 'USD',
    recurring_agreement_id: paid.recurring_agreement_id,
    payment: { token: paid.token, shopper_reference: 'shopper-node' },
  };
  const { order } = await client.chargeRecurring(charge, inAMinute());
  assert.equal(order.status, 'ORDER_STATUS_SUCCESS');
  assert.equal(order.amount, '990');
  const { order: again } = await client.chargeRecurring(charge, inAMinute());
  assert.equal(again.order_id, order.order_id);

  // The same order and a charge as the limited caller, identified by its own client certificate:
  // no stored-card fields, and ChargeRecurring refused.
  const limitedSecurity = { caFile: process.env.PAYORCH_CA, certFile: process.env.PAYORCH_LIMITED_CERT,
    keyFile: process.env.PAYORCH_LIMITED_KEY };
  await withClient({ maxAttempts: 1, security: limitedSecurity }, async (limited) => {
    const { order: seen } = await limited.getOrder({ merchant_id: merchant, session_id: created.session_id }, inAMinute());
    assert.equal(seen.status, 'ORDER_STATUS_SUCCESS');
    assert.equal(seen.token, '');
    assert.equal(seen.recurring_agreement_id, '');
    const denied = await limited.chargeRecurring({ ...charge, trans_id: transId('nodedenied') }, inAMinute())
      .then(() => null, (e) => e);
    const d = errorDetails(denied);
    assert.ok(d, `expected a gRPC error, got ${denied}`);
    assert.equal(d.codeName, 'PERMISSION_DENIED');
    assert.equal(d.reason, 'CALLER_NOT_AUTHORIZED');
  })();
}));

test('a caller without a client certificate is refused', { skip }, async () => {
  assert.throws(() => new PayorchClient(target, {}), /caFile, certFile and keyFile/);
  await withClient({ maxAttempts: 1, callTimeoutMs: 5000, security: { plaintext: true } }, async (client) => {
    const err = await client.getOrder({ merchant_id: merchant, trans_id: transId('nodeplain') }, inAMinute())
      .then(() => null, (e) => e);
    const d = errorDetails(err);
    assert.ok(d, `expected a gRPC error, got ${err}`);
    assert.equal(d.codeName, 'UNAVAILABLE');
  })();
});

// PayKKa fails (503) until the first retry: the client retries with the same trans_id and
// payorch creates exactly one session.
test('retries the same trans_id after a retryable failure', { skip }, async () => {
  await control('PUT', '/sandbox/faults', {
    rules: [{ endpoint: '/v3/payment/acq/session', http_status: 503, error_rate: 1.0 }],
  });
  const seen = [];
  try {
    await withClient({
      onRetry: async (_method, _attempt, d) => { seen.push(d); await control('DELETE', '/sandbox/faults'); },
    }, async (client) => {
      const request = checkout(transId('noderetry'));
      const created = await client.createCheckout(request, inAMinute());
      assert.match(created.session_id, /^CS/);
      assert.equal(seen.length, 1, JSON.stringify(seen));
      assert.equal(seen[0].codeName, 'UNAVAILABLE');
      assert.ok(RETRYABLE_REASONS.has(seen[0].reason), seen[0].reason);
      const counters = await control('GET', '/sandbox/counters');
      assert.equal(counters.creates_by_trans_id[request.trans_id], 1);
    })();
  } finally {
    await control('DELETE', '/sandbox/faults');
  }
});
