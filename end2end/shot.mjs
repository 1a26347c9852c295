import { chromium } from 'playwright-core';
const base = process.argv[2];
const pages = process.argv.slice(3);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = [];
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
await page.goto(base + '/login');
await page.getByLabel('Email').fill('owner@example.com');
await page.getByLabel('Password').fill('correct horse battery staple');
await page.getByRole('button', { name: 'Log in' }).click();
await page.waitForURL(base + '/');
for (const [i, p] of pages.entries()) {
  const t = Date.now();
  await page.goto(base + p);
  console.log(p, Date.now() - t, 'ms');
  await page.screenshot({ path: `/tmp/shots/${i}.png`, fullPage: true });
}
console.log('console errors:', errors);
await browser.close();
