// The customer's round trip and the admin's refund, in Chromium against the real server and a
// Stripe stand-in: pricing → choose a plan → (stand-in) Checkout → pay → success page shows the
// active subscription → the admin finds the customer, refunds part of the payment, and sees the
// refund settle when its webhook arrives.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTally, launchBrowser, logIn, sendWebhook } from './harness.mjs';
import { startStripeStandIn, PRODUCT, PRICE } from './stripe-standin.mjs';

let stripe;
let tally;
let browser;

before(async () => {
  stripe = await startStripeStandIn();
  tally = await startTally((base) => ({
    STRIPE_SECRET_KEY: 'sk_test_51endtoend',
    STRIPE_API_BASE: stripe.base,
    PUBLIC_BASE_URL: base,
    RECONCILE_INTERVAL: 'off',
    TALLY_SECRETS_KEY: '3c'.repeat(32),
  }));
  stripe.tallyBase = tally.base;
  browser = await launchBrowser();
  // The catalogue arrives the way it does in production: by webhook.
  for (const [type, object] of [['product.created', PRODUCT], ['price.created', PRICE]]) {
    const res = await sendWebhook(tally.base, stripe.event(type, object));
    assert.equal(res.status, 200);
  }
});

after(async () => {
  await browser?.close();
  await tally?.stop();
  await stripe?.stop();
});

async function eventually(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

test('a customer subscribes through Checkout and an admin refunds part of the payment', async () => {
  const customer = await browser.newPage();
  await eventually(async () => (await (await fetch(`${tally.base}/pricing`)).text()).includes('$20.00'), 'the plan on the pricing page');
  await customer.goto(`${tally.base}/pricing`);
  const plan = customer.locator('section.plan', { hasText: 'Pro' });
  await plan.getByText('$20.00').waitFor();
  await plan.getByRole('button', { name: 'Choose' }).click();
  await customer.waitForURL(/\/pay\/cs_test_e2e/);
  const created = stripe.requests.find((r) => r.path === '/v1/checkout/sessions');
  assert.equal(created.form['line_items[0][price]'], PRICE.id);
  assert.equal(created.form.mode, 'subscription');
  assert.match(created.idempotencyKey, /^tally-checkout-/);

  await customer.getByRole('button', { name: 'Pay' }).click();
  await customer.waitForURL(/\/checkout\/success\?session_id=cs_test_e2e/);
  const card = customer.locator('section[data-state]');
  assert.equal(await card.getAttribute('data-state'), 'paid');
  assert.match(await card.innerText(), /Thank you, you are all set/);
  assert.equal(await customer.locator('[data-field="subscription"]').innerText(), 'active');
  assert.equal(await customer.locator('[data-field="email"]').innerText(), 'buyer@example.com');
  assert.equal(await customer.locator('[data-field="amount"]').innerText(), '$20.00');

  // The admin sees the new customer and subscription.
  const admin = await (await browser.newContext()).newPage();
  await logIn(admin, tally.base);
  await eventually(async () => {
    await admin.goto(`${tally.base}/customers?q=buyer`);
    return (await admin.locator('table').innerText().catch(() => '')).includes('Bea Buyer');
  }, 'the customer in the list');
  await admin.getByRole('link', { name: 'Bea Buyer' }).click();
  await admin.waitForURL(`${tally.base}/customers/cus_e2e`);
  assert.equal((await admin.locator('tr[data-subscription="sub_e2e"] .subscription-status').innerText()).trim(), 'Active');

  // Refund part of the payment from its page.
  await eventually(async () => {
    await admin.goto(`${tally.base}/customers/cus_e2e`);
    return (await admin.getByRole('link', { name: 'ch_e2e' }).count()) > 0;
  }, 'the payment on the customer page');
  await admin.getByRole('link', { name: 'ch_e2e' }).click();
  await admin.waitForURL(`${tally.base}/payments/ch_e2e`);
  assert.equal(await admin.locator('[data-field="amount"]').innerText(), '$20.00');
  // The refund form is folded away and empty (empty refunds all that remains); it asks first.
  const amount = admin.getByLabel('Amount');
  assert.equal(await amount.isVisible(), false, 'the refund form starts folded');
  await admin.getByText('Refund this payment…').click();
  assert.equal(await amount.inputValue(), '');
  await amount.fill('5.00');
  await admin.getByRole('button', { name: 'Review refund…' }).click();
  const confirm = admin.locator('[data-test="confirm-refund"]');
  await confirm.waitFor();
  assert.match(await confirm.locator('h2').innerText(), /^Refund \$5\.00 of \$20\.00 to .+\?$/);
  assert.equal(stripe.requests.filter((r) => r.path === '/v1/refunds').length, 0, 'nothing is sent before the confirmation');
  await admin.getByLabel('Internal note').fill('partial refund, e2e');
  await admin.getByRole('button', { name: 'Yes, refund $5.00' }).click();
  await admin.getByRole('status').filter({ hasText: 'Refund of $5.00 sent' }).waitFor();
  assert.equal(await admin.locator('[data-test="confirm-refund"]').count(), 0, 'the confirmation is gone once sent');
  const refunds = stripe.requests.filter((r) => r.path === '/v1/refunds');
  assert.equal(refunds.length, 1);
  assert.equal(refunds[0].form.amount, '500');
  assert.equal(refunds[0].form.charge, 'ch_e2e');
  assert.match(refunds[0].idempotencyKey, /^tally-refund-ch_e2e-[0-9a-f]{32}-500$/);
  assert.equal((await admin.locator('tr[data-refund="re_e2e_1"] .refund-status').innerText()).trim(), 'Pending');

  // The refund settles when its webhook arrives.
  await eventually(async () => {
    await admin.reload();
    const status = await admin.locator('tr[data-refund="re_e2e_1"] .refund-status').innerText().catch(() => '');
    return status.trim() === 'Succeeded';
  }, 'the refund to settle');
  assert.equal(await admin.locator('[data-field="refunded"]').innerText(), '$5.00');
});

test('an owner adds a second Stripe account in Settings; its key is never shown again', async () => {
  const page = await browser.newPage();
  await logIn(page, tally.base);
  await page.goto(`${tally.base}/settings/accounts`);
  // The environment's account, registered from GET /v1/account at start.
  await eventually(async () => {
    await page.reload();
    return (await page.locator('tr#acct_e2e_env').count()) === 1;
  }, "the environment's account to be listed");
  await page.getByLabel('Secret or restricted key').fill('sk_test_51secondaccount');
  await page.getByLabel('Webhook signing secrets').fill('whsec_e2e_second');
  await page.getByRole('button', { name: 'Add account' }).click();
  await page.getByRole('status').filter({ hasText: 'Added Acme EU (acct_e2e_second, test mode)' }).waitFor();
  const row = page.locator('tr#acct_e2e_second');
  await row.waitFor();
  assert.match(await row.innerText(), /Acme EU/);
  const html = await page.content();
  assert.ok(!html.includes('sk_test_51secondaccount') && !html.includes('whsec_e2e_second'), 'a secret is on the page');
  assert.equal(await page.getByLabel('Secret or restricted key').inputValue(), '', 'the key field is empty again');

  // With two accounts the layout offers a switcher; the choice is kept in the URL and the links.
  await page.goto(`${tally.base}/`);
  const switcher = page.locator('[data-test=account-switcher]');
  await switcher.waitFor();
  assert.equal(await switcher.locator('select').inputValue(), 'all', 'every account at first');
  await switcher.locator('select').selectOption({ label: 'Acme EU' });
  await switcher.getByRole('button', { name: 'Switch' }).click();
  await page.waitForURL(/[?&]account=acct_e2e_second/);
  assert.equal(await page.locator('[data-test=account-switcher] select').inputValue(), 'acct_e2e_second');
  const customers = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Customers' });
  assert.equal(await customers.getAttribute('href'), '/customers?account=acct_e2e_second');
  await customers.click();
  await page.waitForURL(/\/customers\?account=acct_e2e_second/);
  assert.equal(await page.locator('[data-test=account-switcher] select').inputValue(), 'acct_e2e_second');
  // The second account has no customers of the first: the list is empty.
  assert.ok(!(await page.content()).includes('cus_'), "another account's customer is listed");
  // Back to every account.
  await page.locator('[data-test=account-switcher] select').selectOption('all');
  await page.locator('[data-test=account-switcher]').getByRole('button', { name: 'Switch' }).click();
  await page.waitForURL(/[?&]account=all/);
  await page.close();
});
