// Screenshots of every page at a desktop and a phone width, light and dark, for people to look
// at (scripts/screenshots.sh runs it against a demo; nothing here is committed).
//
//   node screenshots.mjs BASE OUT_DIR
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { logIn } from './tests/harness.mjs';

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error('usage: node screenshots.mjs BASE OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const pages = [
  ['overview', '/?currency=usd'],
  ['overview-jpy', '/?currency=jpy&months=12'],
  ['customers', '/customers'],
  ['subscriptions', '/subscriptions'],
  ['payments', '/payments'],
  ['invoices', '/invoices'],
  ['refunds', '/refunds?status=all'],
  ['disputes', '/disputes?status=all'],
  ['revenue', '/revenue'],
  ['definitions', '/definitions'],
  ['webhooks', '/webhooks'],
  ['settings', '/settings'],
  ['accounts', '/settings/accounts'],
  ['overview-connected', '/?account=acct_1DemoNorthwind'],
  ['admins', '/settings/admins'],
  ['pricing', '/pricing'],
];
const errors = [];
let shots = 0;
for (const [width, height] of [[1440, 1000], [390, 844]]) {
  for (const scheme of ['light', 'dark']) {
    const context = await browser.newContext({ viewport: { width, height }, colorScheme: scheme });
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && errors.push(`${page.url()}: ${m.text()}`));
    await logIn(page, base);
    // The first customer and payment, for their own pages.
    await page.goto(`${base}/payments?status=succeeded`);
    const payment = await page.locator('table tbody a[href^="/payments/"]').first().getAttribute('href').catch(() => null);
    const customer = await page.locator('table tbody a[href^="/customers/"]').first().getAttribute('href').catch(() => null);
    const all = [...pages];
    if (payment) all.push(['payment', payment]);
    if (customer) all.push(['customer', customer]);
    for (const [name, path] of all) {
      await page.goto(`${base}${path}`);
      const file = join(out, `${name}-${width}-${scheme}.png`);
      await page.screenshot({ path: file, fullPage: true });
      shots += 1;
    }
    await context.close();
  }
}
await browser.close();
console.log(`${shots} screenshots in ${out}`);
if (errors.length) {
  console.log('console errors:\n' + errors.join('\n'));
  process.exit(1);
}
