// A stand-in for Stripe on loopback, for the customer's round trip: the API calls Tally makes
// (Checkout Sessions, refunds, portal sessions) and a hosted Checkout page whose "Pay" button
// sends Stripe's signed webhooks to Tally and returns to the success URL, as Stripe would.
import http from 'node:http';
import { sendWebhook } from './harness.mjs';

const now = () => Math.floor(Date.now() / 1000);

function readBody(req) {
  return new Promise((ok) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => ok(data));
  });
}

let eventCounter = 0;
function event(type, object) {
  eventCounter += 1;
  return {
    id: `evt_e2e_${eventCounter}_${Date.now()}`,
    object: 'event',
    type,
    created: now(),
    livemode: false,
    api_version: '2026-09-30.endive',
    data: { object },
  };
}

export const PRODUCT = { id: 'prod_e2e', object: 'product', name: 'Pro', description: 'For growing teams', active: true, created: now() - 86400 };
export const PRICE = {
  id: 'price_e2e_month', object: 'price', product: 'prod_e2e', active: true, currency: 'usd', unit_amount: 2000,
  type: 'recurring', created: now() - 86400, recurring: { interval: 'month', interval_count: 1, usage_type: 'licensed' },
};

export async function startStripeStandIn() {
  const state = { tallyBase: undefined, sessions: new Map(), requests: [], refunds: 0 };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const body = await readBody(req);
    const form = Object.fromEntries(new URLSearchParams(body));
    state.requests.push({ method: req.method, path: url.pathname, form, idempotencyKey: req.headers['idempotency-key'] });
    const json = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_e2e_${state.requests.length}` });
      res.end(JSON.stringify(obj));
    };
    const base = `http://127.0.0.1:${server.address().port}`;
    if (req.method === 'POST' && url.pathname === '/v1/checkout/sessions') {
      const id = `cs_test_e2e${state.sessions.size + 1}`;
      const session = {
        id, object: 'checkout.session', status: 'open', payment_status: 'unpaid', mode: form.mode,
        url: `${base}/pay/${id}`, success_url: form.success_url, cancel_url: form.cancel_url,
        amount_total: PRICE.unit_amount, currency: 'usd', created: now(), livemode: false,
        metadata: { tally_price: form['metadata[tally_price]'], tally_reference: form['metadata[tally_reference]'] },
        customer: null, subscription: null,
      };
      state.sessions.set(id, session);
      return json(200, session);
    }
    const pay = url.pathname.match(/^\/pay\/(cs_[A-Za-z0-9_]+)$/);
    if (pay && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(`<!doctype html><title>Stripe Checkout (stand-in)</title><h1>Pay $20.00</h1>
        <form method="post"><button type="submit">Pay</button></form>`);
    }
    if (pay && req.method === 'POST') {
      const session = state.sessions.get(pay[1]);
      const t = now();
      const customer = { id: 'cus_e2e', object: 'customer', email: 'buyer@example.com', name: 'Bea Buyer', created: t, livemode: false };
      const subscription = {
        id: 'sub_e2e', object: 'subscription', customer: 'cus_e2e', status: 'active', currency: 'usd', created: t, start_date: t,
        cancel_at_period_end: false, livemode: false,
        items: { object: 'list', has_more: false, data: [{ id: 'si_e2e', object: 'subscription_item', quantity: 1, price: PRICE,
          current_period_start: t, current_period_end: t + 30 * 86400 }] },
      };
      const charge = {
        id: 'ch_e2e', object: 'charge', amount: 2000, amount_captured: 2000, amount_refunded: 0, currency: 'usd',
        status: 'succeeded', paid: true, captured: true, refunded: false, customer: 'cus_e2e', invoice: 'in_e2e',
        created: t, livemode: false, payment_method_details: { type: 'card', card: { brand: 'visa', last4: '4242' } },
        refunds: { object: 'list', has_more: false, data: [] },
      };
      const invoice = {
        id: 'in_e2e', object: 'invoice', customer: 'cus_e2e', subscription: 'sub_e2e', status: 'paid', currency: 'usd',
        amount_due: 2000, amount_paid: 2000, amount_remaining: 0, total: 2000, subtotal: 2000, created: t, livemode: false,
        billing_reason: 'subscription_create',
      };
      Object.assign(session, { status: 'complete', payment_status: 'paid', customer: 'cus_e2e', subscription: 'sub_e2e',
        customer_details: { email: 'buyer@example.com' } });
      state.subscription = subscription;
      for (const [type, object] of [
        ['customer.created', customer],
        ['customer.subscription.created', subscription],
        ['invoice.paid', invoice],
        ['charge.succeeded', charge],
        ['checkout.session.completed', { ...session }],
      ]) {
        const r = await sendWebhook(state.tallyBase, event(type, object));
        if (!r.ok) throw new Error(`Tally refused ${type}: ${r.status}`);
      }
      state.charge = charge;
      res.writeHead(303, { location: session.success_url.replace('{CHECKOUT_SESSION_ID}', session.id) });
      return res.end();
    }
    const retrieve = url.pathname.match(/^\/v1\/checkout\/sessions\/(cs_[A-Za-z0-9_]+)$/);
    if (retrieve && req.method === 'GET') {
      const session = state.sessions.get(retrieve[1]);
      if (!session) return json(404, { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such session' } });
      return json(200, {
        ...session,
        line_items: { object: 'list', has_more: false, data: [{ id: 'li_e2e', object: 'item', description: 'Pro', amount_total: 2000, currency: 'usd', price: PRICE }] },
        subscription: session.subscription ? state.subscription : null,
      });
    }
    if (req.method === 'POST' && url.pathname === '/v1/refunds') {
      state.refunds += 1;
      const amount = Number(form.amount);
      const refund = { id: `re_e2e_${state.refunds}`, object: 'refund', status: 'pending', amount, currency: 'usd',
        charge: form.charge, reason: form.reason ?? null, created: now() };
      // The refund settles a moment later; Stripe says so by webhook.
      setTimeout(async () => {
        const settled = { ...refund, status: 'succeeded' };
        await sendWebhook(state.tallyBase, event('refund.updated', settled));
        const refunded = { ...state.charge, amount_refunded: amount, refunds: { object: 'list', has_more: false, data: [settled] } };
        await sendWebhook(state.tallyBase, event('charge.refunded', refunded));
      }, 700);
      return json(200, refund);
    }
    // Whose key it is: the environment's, or the second account's (Settings → Stripe accounts).
    if (req.method === 'GET' && url.pathname === '/v1/account') {
      if (req.headers.authorization === 'Bearer sk_test_51secondaccount') {
        return json(200, { id: 'acct_e2e_second', object: 'account', business_profile: { name: 'Acme EU' } });
      }
      return json(200, { id: 'acct_e2e_env', object: 'account', settings: { dashboard: { display_name: 'Acme US' } } });
    }
    if (req.method === 'POST' && url.pathname === '/v1/billing_portal/sessions') {
      return json(200, { id: 'bps_e2e', object: 'billing_portal.session', url: `${base}/portal/${form.customer}` });
    }
    if (req.method === 'GET' && url.pathname.startsWith('/portal/')) {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end('<!doctype html><title>Billing portal (stand-in)</title><h1>Billing portal</h1>');
    }
    json(404, { error: { type: 'invalid_request_error', message: `stand-in has no ${req.method} ${url.pathname}` } });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  state.base = `http://127.0.0.1:${server.address().port}`;
  state.stop = () => new Promise((ok) => server.close(ok));
  state.event = event;
  return state;
}
