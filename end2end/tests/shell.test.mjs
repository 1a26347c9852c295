// The app shell in a real browser: the page renders, the WebAssembly bundle hydrates it, and a
// client-side interaction works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTallyAndBrowser, logIn } from './harness.mjs';

const ctx = withTallyAndBrowser();

test('overview renders and hydrates: the menu button works only once the wasm bundle runs', async () => {
  const page = await ctx.browser.newPage({ viewport: { width: 390, height: 800 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const wasm = page.waitForResponse((r) => /^\/pkg\/tally\.[A-Za-z0-9_-]+\.wasm$/.test(new URL(r.url()).pathname) && r.ok());
  await logIn(page, ctx.tally.base);
  await wasm;
  assert.equal(await page.title(), 'Overview · Tally');
  await page.getByText('Connect Stripe to see your numbers').waitFor();

  const toggle = page.locator('button.menu-toggle');
  const nav = page.locator('#primary-nav');
  // Once the island runs, the button appears and the links fold behind it.
  await toggle.waitFor({ state: 'visible', timeout: 15_000 });
  assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
  assert.equal(await nav.isVisible(), false, 'the menu starts folded on a phone');
  // Hydration may finish a moment after the wasm file arrives: retry the click until it takes.
  const deadline = Date.now() + 15_000;
  while ((await toggle.getAttribute('aria-expanded')) !== 'true') {
    assert.ok(Date.now() < deadline, 'the menu button never responded: the page did not hydrate');
    await toggle.click();
    await page.waitForTimeout(200);
  }
  assert.equal(await nav.isVisible(), true);

  // Client-side navigation from the opened menu.
  await nav.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Configuration' }).waitFor();
  assert.equal(await page.title(), 'Settings · Tally');
  assert.deepEqual(errors, []);
  await page.close();
});

test('on a phone with JavaScript off the navigation is a row of links that works', async () => {
  const context = await ctx.browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 800 } });
  const page = await context.newPage();
  await logIn(page, ctx.tally.base);
  const nav = page.locator('#primary-nav');
  assert.equal(await nav.isVisible(), true, 'the links are shown, not folded behind a button that cannot work');
  assert.equal(await page.locator('button.menu-toggle').isVisible(), false);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page does not scroll sideways (${width} px)`);
  await nav.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Configuration' }).waitFor();
  await context.close();
});

test('unknown address shows the 404 page with navigation', async () => {
  const page = await ctx.browser.newPage();
  await logIn(page, ctx.tally.base);
  const res = await page.goto(ctx.tally.base + '/no/such/page');
  assert.equal(res.status(), 404);
  await page.getByRole('heading', { name: 'Page not found' }).waitFor();
  assert.equal(await page.locator('#primary-nav a').count(), 7);
  await page.close();
});
