// Forms work the same with JavaScript off: pages are server-rendered and post straight to the
// server; only the menu is an island. What an action says shows on the page it returns to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTallyAndBrowser, logIn } from './harness.mjs';

const ctx = withTallyAndBrowser();

for (const javaScriptEnabled of [false, true]) {
  test(`an owner creates and revokes an API key (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
    const context = await ctx.browser.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    const errors = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await logIn(page, ctx.tally.base);
    await page.getByRole('link', { name: 'Settings' }).first().click();
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.waitForURL(ctx.tally.base + '/settings/api-keys');
    const name = `key ${javaScriptEnabled ? 'on' : 'off'}`;

    // A refused name: the server's message, on the same page.
    await page.getByLabel('Name').fill('   ');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('alert').filter({ hasText: 'Give the key a name' }).waitFor();

    await page.getByLabel('Name').fill(name);
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = (await page.locator('[data-test="new-key"]').innerText()).trim();
    assert.match(key, /^tly_[0-9a-f]{40}$/);
    const row = page.locator('tr', { hasText: name });
    assert.ok(await row.isVisible(), 'the new key is listed');

    // Shown once: gone after a reload.
    await page.reload();
    assert.equal(await page.locator('[data-test="new-key"]').count(), 0);

    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('status').filter({ hasText: 'The key is revoked' }).waitFor();
    assert.match(await page.locator('tr', { hasText: name }).innerText(), /revoked/);
    assert.deepEqual(errors, [], 'no CSP violations or script errors');
    await context.close();
  });
}
