// Logging in and out in a real browser, with JavaScript on and off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTallyAndBrowser, logIn, OWNER } from './harness.mjs';

const ctx = withTallyAndBrowser();

test('an admin logs in, sees the overview, and logs out', async () => {
  const page = await ctx.browser.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(ctx.tally.base + '/customers');
  assert.equal(new URL(page.url()).pathname, '/login', 'pages need a login');
  await logIn(page, ctx.tally.base);
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  assert.ok(await page.getByText(OWNER.email).isVisible());
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL((u) => u.pathname === '/login');
  await page.getByText('You have logged out.').waitFor();
  // The session is gone: pages send us back to the login form.
  await page.goto(ctx.tally.base + '/settings');
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.deepEqual(errors, [], 'no CSP violations or script errors');
  await page.close();
});

test('login works with JavaScript off, and a wrong password says so', async () => {
  const context = await ctx.browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(ctx.tally.base + '/login?next=%2Fsettings');
  await page.getByLabel('Email').fill(OWNER.email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('Email or password is incorrect.').waitFor();
  await page.getByLabel('Email').fill(OWNER.email);
  await page.getByLabel('Password').fill(OWNER.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(ctx.tally.base + '/settings');
  await page.getByRole('heading', { name: 'Configuration' }).waitFor();
  await context.close();
});
