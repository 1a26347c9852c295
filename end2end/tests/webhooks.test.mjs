// A signed event arrives and shows up on the Webhooks page with its payload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTallyAndBrowser, logIn, sendWebhook } from './harness.mjs';

const ctx = withTallyAndBrowser();

test('an event Stripe sends appears on the Webhooks page, applied', async () => {
  const event = {
    id: 'evt_e2e_1',
    object: 'event',
    type: 'customer.created',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    data: { object: { id: 'cus_e2e_1', object: 'customer', email: 'grace@example.com', name: 'Grace' } },
  };
  const res = await sendWebhook(ctx.tally.base, event);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { received: true, duplicate: false });

  const page = await ctx.browser.newPage();
  await logIn(page, ctx.tally.base);
  await page.getByRole('link', { name: 'Webhooks' }).first().click();
  const row = page.locator('table.events tr', { hasText: 'customer.created' });
  await row.waitFor();
  // The worker applies it within moments; reload until it says so.
  const deadline = Date.now() + 10_000;
  while (!(await row.textContent()).includes('applied')) {
    assert.ok(Date.now() < deadline, 'the event was never applied');
    await page.waitForTimeout(250);
    await page.reload();
  }
  await row.getByRole('link', { name: 'customer.created' }).click();
  await page.getByRole('heading', { name: 'Webhook event' }).waitFor();
  assert.ok(await page.getByText('grace@example.com').first().isVisible());

  // And on the customer it touched, with the event in its timeline.
  await page.getByRole('link', { name: 'Customers' }).first().click();
  await page.getByRole('link', { name: 'Grace' }).click();
  await page.getByRole('heading', { name: 'Grace' }).waitFor();
  assert.ok(await page.getByText('cus_e2e_1').isVisible());
  assert.ok(await page.locator('.timeline').getByText('customer.created').isVisible());
  await page.close();
});
