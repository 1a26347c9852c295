// What a person's browser downloads: the bundle under content-hashed names, brotli-compressed and
// cached for good, pages gzip-compressed; a repeat visit fetches only the pages. The figures are
// printed (docs/benchmarks.md quotes them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTally, launchBrowser, logIn } from './harness.mjs';

let tally;
let browser;

before(async () => {
  tally = await startTally({}, { seedDemo: 200 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await tally?.stop();
});

/** Bytes over the wire (headers and body, as encoded) per request while `run` goes. */
async function transfers(context, page, run) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const seen = new Map();
  cdp.on('Network.responseReceived', (e) => {
    const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
    seen.set(e.requestId, { url: e.response.url, encoding: h['content-encoding'] ?? '', cache: h['cache-control'] ?? '', bytes: 0, cached: false });
  });
  cdp.on('Network.requestServedFromCache', (e) => {
    const r = seen.get(e.requestId);
    if (r) r.cached = true;
    else seen.set(e.requestId, { url: '', encoding: '', cache: '', bytes: 0, cached: true });
  });
  cdp.on('Network.loadingFinished', (e) => {
    const r = seen.get(e.requestId);
    if (r) r.bytes = e.encodedDataLength;
  });
  await run();
  // Let the last loadingFinished events arrive.
  await page.waitForLoadState('networkidle');
  await cdp.detach();
  return [...seen.values()].filter((r) => r.url.startsWith(tally.base));
}

const kind = (url) => {
  const path = new URL(url).pathname;
  if (path.startsWith('/pkg/')) return path.split('.').pop();
  return path.startsWith('/api/') ? 'json' : 'html';
};

function summary(requests) {
  const by = {};
  for (const r of requests) by[kind(r.url)] = (by[kind(r.url)] ?? 0) + r.bytes;
  const total = requests.reduce((n, r) => n + r.bytes, 0);
  return { total, by };
}

test('the bundle arrives compressed and hashed, and a repeat visit fetches only the pages', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));

  const first = await transfers(context, page, async () => {
    await logIn(page, tally.base);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  });
  const pkg = first.filter((r) => new URL(r.url).pathname.startsWith('/pkg/'));
  for (const ext of ['js', 'wasm', 'css']) {
    const r = pkg.find((p) => p.url.endsWith('.' + ext));
    assert.ok(r, `no ${ext} in ${JSON.stringify(pkg)}`);
    assert.match(new URL(r.url).pathname, /^\/pkg\/tally\.[A-Za-z0-9_-]{16,}\.(js|wasm|css)$/, 'a content-hashed name');
    assert.equal(r.encoding, 'br', `${r.url} is brotli-compressed`);
    assert.equal(r.cache, 'public, max-age=31536000, immutable', r.url);
  }
  for (const r of first.filter((r) => kind(r.url) === 'html' && r.bytes > 2000)) {
    assert.equal(r.encoding, 'gzip', `${r.url} is compressed`);
  }

  // A repeat visit (the same browser, later): the login page and the overview again.
  const repeat = await transfers(context, page, async () => {
    await page.goto(tally.base + '/login');
    await page.goto(tally.base + '/');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  });
  // From the cache: nothing crosses the wire for the bundle (no request, or one answered by the
  // browser's cache with 0 bytes transferred).
  const refetched = repeat.filter((r) => new URL(r.url).pathname.startsWith('/pkg/') && !r.cached && r.bytes > 0);
  assert.deepEqual(refetched, [], 'the bundle comes from the cache');
  const a = summary(first);
  const b = summary(repeat);
  console.log(`transfer: first visit ${a.total} bytes ${JSON.stringify(a.by)}; repeat visit ${b.total} bytes ${JSON.stringify(b.by)}`);
  assert.ok(b.total <= 30_000, `a repeat visit transfers at most 30 KB, not ${b.total}`);
  assert.deepEqual(errors, []);
  await context.close();
});
