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
  tally = await startTally({ RECONCILE_INTERVAL: 'off', TALLY_SECRETS_KEY: '5a'.repeat(32) }, { seedDemo: 300 });
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
  assert.ok(statuses.length > 0 && statuses.every((s) => s.trim() === 'Failed'), statuses.join(','));

  // The CSV download carries the same filter.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-test="csv"]').click()]);
  assert.match(download.suggestedFilename(), /^tally-payments-.*\.csv$/);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\r\n');
  assert.equal(csv[0], '"Date","Payment","Customer","Status","Amount","Refunded","Failure","Currency","Stripe account"');
  assert.ok(csv.length > 1);
  assert.ok(csv.slice(1).every((line) => line.includes('"failed"')));
});

test('a figure opens the rows that add up to it', async () => {
  await page.goto(`${tally.base}/?currency=usd`);
  const cents = (s) => Number(s.replace(/[^\d]/g, ''));
  const churned = (await page.locator('[data-kpi="churned-mrr"] .kpi-value').innerText()).trim();
  await page.locator('[data-kpi="churned-mrr"] .kpi-value').click();
  await page.waitForURL(/\/revenue\?.*kind=churn.*since=\d+&through=\d+/);
  const total = (await page.locator('[data-test="movement-total"]').innerText()).trim();
  assert.equal(cents(total), cents(churned), `the churn movements of the 30 days add up to ${churned}`);
  assert.ok(total.startsWith('-') || cents(total) === 0, total);
  assert.ok(await page.locator('[data-test="movement-window"]').isVisible(), 'the window is shown');

  await page.goto(`${tally.base}/?currency=usd`);
  const active = (await page.locator('[data-kpi="active-subscriptions"] .kpi-value').innerText()).trim();
  await page.locator('[data-kpi="active-subscriptions"] .kpi-value').click();
  await page.waitForURL(/\/subscriptions\?status=active/);
  const matching = page.locator('.totals .total[data-currency="usd"]');
  assert.equal((await matching.innerText()).split(' ')[0], active, 'the list counts what the figure says');
});

test('money lines up on the right in tabular figures; statuses read as words', async () => {
  await page.goto(`${tally.base}/payments?status=all`);
  const cell = page.locator('table.list-payments tbody tr').first().locator('td').nth(4);
  const style = await cell.evaluate((td) => {
    const s = getComputedStyle(td);
    return { align: s.textAlign, numeric: s.fontVariantNumeric };
  });
  assert.equal(style.align, 'right');
  assert.match(style.numeric, /tabular-nums/);
  const badges = await page.locator('table.list-payments tbody .status').allInnerTexts();
  assert.ok(badges.length > 0 && badges.every((b) => /^[A-Z][a-z ]+$/.test(b.trim())), badges.join(','));
  // Subscriptions lead with the customer and the plan; the id links to where it lives.
  await page.goto(`${tally.base}/subscriptions`);
  const headers = await page.locator('table.list-subscriptions thead th').allInnerTexts();
  assert.deepEqual(headers.slice(0, 2).map((h) => h.trim()), ['Customer', 'Plan']);
  const plan = (await page.locator('table.list-subscriptions tbody tr td:nth-child(2)').first().innerText()).trim();
  assert.match(plan, / · (monthly|yearly|weekly|daily|every \d+ \w+)/);
  const id = page.locator('table.list-subscriptions tbody tr td:last-child a').first();
  const subId = (await id.innerText()).trim();
  await id.click();
  await page.waitForURL(new RegExp(`/customers/cus_[^#]+#${subId}$`));
  assert.ok(await page.locator(`tr[id="${subId}"]`).isVisible());
});

for (const width of [1440, 390]) {
  test(`charts are readable at ${width} px: labels of 11 px or more that do not collide, values on focus`, async () => {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    const p = await context.newPage();
    await logIn(p, tally.base);
    await p.goto(`${tally.base}/?currency=usd&months=24`);
    for (const chart of ['MRR', 'MRR movements', 'Revenue', 'Active subscribers', 'Failed-payment rate']) {
      const figure = p.locator(`figure[data-chart="${chart}"]`);
      const boxes = await figure.locator('text.x-label, .chart-axis text').evaluateAll((nodes) =>
        nodes
          .filter((n) => getComputedStyle(n).display !== 'none')
          .map((n) => {
            const r = n.getBoundingClientRect();
            return { axis: !n.classList.contains('x-label'), size: parseFloat(getComputedStyle(n).fontSize), left: r.left, right: r.right, text: n.textContent };
          }),
      );
      assert.ok(boxes.length >= 4, `${chart}: labels shown`);
      for (const b of boxes) assert.ok(b.size >= 11, `${chart}: "${b.text}" at ${b.size} px`);
      const months = boxes.filter((b) => !b.axis).sort((a, b) => a.left - b.left);
      for (let i = 1; i < months.length; i++) {
        assert.ok(months[i].left >= months[i - 1].right, `${chart}: "${months[i - 1].text}" and "${months[i].text}" overlap`);
      }
      // Whole units on the axis: no cents.
      for (const b of boxes.filter((b) => b.axis)) assert.doesNotMatch(b.text, /\.\d\d$/, `${chart}: ${b.text}`);
      // The 24 months asked for, on every chart.
      assert.equal(await figure.locator('tbody tr').count(), 24, `${chart}: 24 months`);
    }
    // Keyboard: tabbing onto a point shows its month and value.
    const mark = p.locator('figure[data-chart="MRR movements"] .mark').first();
    await mark.focus();
    const tip = mark.locator('.tip');
    assert.ok(await tip.isVisible(), 'the focused point shows its value');
    assert.match(await tip.textContent(), /^[A-Z][a-z]{2} \d\d · \w+: -?\$[\d,]+\.\d\d$/);
    const scroll = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scroll <= width, `the overview does not scroll sideways (${scroll} px)`);
    await context.close();
  });
}

test('on a phone no page scrolls sideways or logs an error, and list rows keep their amount and status in view', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 800 } });
  const p = await context.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await logIn(p, tally.base);
  const lists = ['/customers', '/subscriptions', '/payments?status=all', '/invoices?status=all', '/refunds?status=all', '/disputes?status=all'];
  // One customer's and one payment's own pages too.
  await p.goto(`${tally.base}/payments?status=succeeded`);
  const payment = await p.locator('table tbody a[href^="/payments/"]').first().getAttribute('href');
  const customer = await p.locator('table tbody a[href^="/customers/"]').first().getAttribute('href');
  const others = ['/?currency=usd', '/?currency=jpy&months=12', '/revenue', '/webhooks', '/settings/audit', '/settings/admins', '/settings/api-keys', '/settings/accounts', '/settings/sync', '/definitions', '/settings', '/pricing', payment, customer];
  for (const path of [...lists, ...others]) {
    await p.goto(`${tally.base}${path}`);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} scrolls sideways (${width} px)`);
  }
  // The webhooks page too: its rows become cards with the status in view.
  for (const path of [...lists, '/webhooks']) {
    await p.goto(`${tally.base}${path}`);
    const cells = p.locator('table.cards tbody tr').first().locator('td.num, td:has(.status)');
    assert.ok((await cells.count()) > 0, `${path}: key cells found`);
    const n = await cells.count();
    for (let i = 0; i < n; i++) {
      const box = await cells.nth(i).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${path}: a key cell off screen (${JSON.stringify(box)})`);
    }
  }
  assert.deepEqual(errors, []);
  await context.close();
});

test('at 1440 px every list fits its card: no column is cut off', async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const p = await context.newPage();
  await logIn(p, tally.base);
  for (const path of ['/customers', '/subscriptions', '/payments?status=all', '/invoices?status=all', '/refunds?status=all', '/disputes?status=all', '/revenue']) {
    await p.goto(`${tally.base}${path}`);
    const wraps = await p.locator('.table-wrap').evaluateAll((nodes) => nodes.map((n) => [n.scrollWidth, n.clientWidth]));
    assert.ok(wraps.length > 0, `${path}: a table`);
    for (const [scroll, client] of wraps) assert.ok(scroll <= client, `${path}: the table is ${scroll} px wide in ${client} px`);
  }
  await context.close();
});
