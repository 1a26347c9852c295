// The dashboard on demo data, in Chromium: the overview's figures and charts, a customer search,
// a filter carried in the URL, and a CSV download.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startTally, launchBrowser, logIn } from './harness.mjs';

let tally;
let browser;
let page;

before(async () => {
  tally = await startTally({ RECONCILE_INTERVAL: 'off' }, { seedDemo: 300 });
  browser = await launchBrowser();
  page = await (await browser.newContext({ acceptDownloads: true })).newPage();
  await logIn(page, tally.base);
});

after(async () => {
  await browser?.close();
  await tally?.stop();
});

test('the overview shows figures that agree with its charts', async () => {
  await page.goto(`${tally.base}/?currency=usd`);
  const mrr = (await page.locator('[data-kpi="mrr"] .kpi-value').innerText()).trim();
  assert.match(mrr, /^\$[\d,]+\.\d\d$/);
  const arr = (await page.locator('[data-kpi="arr"] .kpi-value').innerText()).trim();
  const cents = (s) => Number(s.replace(/[^\d]/g, ''));
  assert.equal(cents(arr), cents(mrr) * 12, 'ARR is MRR × 12');
  // The MRR chart's table: its last month is today's MRR.
  const chart = page.locator('figure[data-chart="MRR"]');
  assert.equal(await chart.locator('svg circle').count(), 24);
  await chart.locator('summary').click();
  const lastRow = chart.locator('tbody tr').last();
  assert.equal((await lastRow.locator('td').nth(1).innerText()).trim(), mrr);
  // Tooltips on the movements chart name the month, the kind and the amount.
  const tip = await page.locator('figure[data-chart="MRR movements"] rect title').first().textContent();
  assert.match(tip, /^[A-Z][a-z]{2} \d\d · (New|Expansion|Reactivation|Contraction|Churn): -?\$/);
  // The currency switch keeps figures apart.
  await page.getByRole('navigation', { name: 'Currency' }).getByRole('link', { name: 'JPY' }).click();
  await page.waitForURL(/currency=jpy/);
  assert.match(await page.locator('[data-kpi="mrr"] .kpi-value').innerText(), /^¥[\d,]+$/);
  // Each figure links to its definition.
  await page.locator('[data-kpi="revenue-churn"] .kpi-help').click();
  await page.waitForURL(/\/definitions#revenue-churn$/);
  assert.ok(await page.locator('#revenue-churn').isVisible());
});

test('a customer search, a filter in the URL and a CSV download', async () => {
  await page.goto(`${tally.base}/customers`);
  const search = page.getByRole('searchbox').first();
  await search.fill('lovelace');
  await search.press('Enter');
  await page.waitForURL(/q=lovelace/);
  const names = await page.locator('table tbody tr td:first-child').allInnerTexts();
  assert.ok(names.length > 0, 'the demo has Lovelaces');
  assert.ok(names.every((n) => /lovelace/i.test(n)), names.join(', '));

  // A filter lives in the URL: opening the link shows the same list.
  await page.goto(`${tally.base}/payments`);
  await page.getByRole('navigation', { name: 'Status' }).getByRole('link', { name: 'Failed' }).click();
  await page.waitForURL(/status=failed/);
  const url = page.url();
  const other = await (await browser.newContext()).newPage();
  await logIn(other, tally.base);
  await other.goto(url);
  const statuses = await other.locator('table.list-payments tbody tr td:nth-child(4)').allInnerTexts();
  assert.ok(statuses.length > 0 && statuses.every((s) => s.trim() === 'failed'), statuses.join(','));

  // The CSV download carries the same filter.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test="csv"]').click()]);
  assert.match(download.suggestedFilename(), /^tally-payments-.*\.csv$/);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  assert.equal(csv[0], '"Date","Payment","Customer","Status","Amount","Refunded","Failure","Currency"');
  assert.ok(csv.length > 1);
  assert.ok(csv.slice(1).every((line) => line.includes('"failed"')));
});
