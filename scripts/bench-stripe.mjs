// A Stripe stand-in for the backfill benchmark (scripts/bench-sync.sh), on loopback only.
//
//   node scripts/bench-stripe.mjs --port 12111 --delay 300 --limit 25 --customers 20000 --charges 200000
//
// Lists behave as Stripe's: newest first, `limit` (at most 100), `starting_after`, `created[gte]`
// and `created[lt]`; objects are stripe-mock's fixtures (tests/fixtures/fixtures3.json) with their
// own ids, times (spread evenly over three years) and amounts. Every request counts against
// Stripe's rate limit as Stripe applies it: at most `--limit` requests in any rolling second, the
// rest answered 429 (rate_limit_error). Every list call is answered `--delay` ms after it
// arrives (its answer is made meanwhile), as real list calls take their time. Other lists are
// empty.
//
// GET /__stats returns what it saw: requests, 429s, the first and last request's times, and the
// most requests in flight at once.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const port = Number(args.port ?? 12111);
const delay = Number(args.delay ?? 300);
const limit = Number(args.limit ?? 25);
const counts = { customers: Number(args.customers ?? 20000), charges: Number(args.charges ?? 200000) };

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = JSON.parse(fs.readFileSync(path.join(here, '..', 'tests', 'fixtures', 'fixtures3.json'), 'utf8'));
const templates = { customers: fixtures.resources.customer, charges: fixtures.resources.charge };

const NEWEST = 1_764_000_000;
const SPAN = 3 * 365 * 86_400;
// Object i (0 = newest) of a list of n: strictly older as i grows when n < SPAN.
const created = (n, i) => NEWEST - Math.floor((i * SPAN) / n);
const pad = (i) => String(i).padStart(7, '0');
const idOf = { customers: (i) => `cus_bench${pad(i)}`, charges: (i) => `ch_bench${pad(i)}` };

// The fields each object has of its own; the rest of it is its template's.
function own(list, i) {
  const n = counts[list];
  const o = { id: idOf[list](i), created: created(n, i), livemode: false };
  if (list === 'customers') return { ...o, email: `customer${i}@example.com`, name: `Customer ${i}` };
  const amount = 500 + (i % 50) * 100;
  return {
    ...o,
    amount,
    amount_captured: amount,
    amount_refunded: 0,
    captured: true,
    paid: true,
    refunded: false,
    status: 'succeeded',
    currency: 'usd',
    customer: idOf.customers(i % Math.max(counts.customers, 1)),
    invoice: null,
    payment_intent: null,
    balance_transaction: null,
    refunds: { object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/charges/${o.id}/refunds` },
  };
}

// Each template's JSON without its own fields and without the opening brace, made once: an
// object's JSON is its own fields' followed by this (cloning and serializing a 3 KB template
// for every object made the stand-in the busiest process of the benchmark).
const rest = Object.fromEntries(
  Object.entries(templates).map(([list, template]) => {
    const base = { ...template };
    for (const key of Object.keys(own(list, 0))) delete base[key];
    return [list, JSON.stringify(base).slice(1)];
  }),
);

function objectJson(list, i) {
  const fields = JSON.stringify(own(list, i));
  return rest[list] === '}' ? fields : `${fields.slice(0, -1)},${rest[list]}`;
}

// The first index at or after `from` whose object was created before `t` (created falls as i grows).
function firstBefore(n, t) {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (created(n, mid) < t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function page(list, query) {
  const n = counts[list] ?? 0;
  const size = Math.min(Math.max(Number(query.get('limit') ?? 10), 1), 100);
  const gte = query.get('created[gte]');
  const lt = query.get('created[lt]');
  let from = lt == null ? 0 : firstBefore(n, Number(lt));
  const to = gte == null ? n : firstBefore(n, Number(gte)); // first index older than gte
  const after = query.get('starting_after');
  if (after) {
    const m = /^(?:cus|ch)_bench(\d+)$/.exec(after);
    if (!m || Number(m[1]) >= n) {
      return [400, JSON.stringify({ error: { type: 'invalid_request_error', message: 'No such object: starting_after' } })];
    }
    from = Math.max(from, Number(m[1]) + 1);
  }
  const end = Math.min(from + size, to);
  const data = [];
  for (let i = from; i < end; i++) data.push(objectJson(list, i));
  return [200, `{"object":"list","url":"/v1/${list}","has_more":${end < to},"data":[${data.join(',')}]}`];
}

const stats = { requests: 0, refused: 0, first: null, last: null, in_flight: 0, most_in_flight: 0, pages: 0 };
const recent = [];

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/__stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  const now = performance.now();
  stats.requests += 1;
  stats.first ??= Date.now();
  while (recent.length && now - recent[0] >= 1000) recent.shift();
  const send = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_bench${stats.requests}` });
    res.end(JSON.stringify(body));
  };
  if (recent.length >= limit) {
    stats.refused += 1;
    send(429, { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly.' } });
    return;
  }
  recent.push(now);
  stats.in_flight += 1;
  stats.most_in_flight = Math.max(stats.most_in_flight, stats.in_flight);
  // The answer is made at once and sent `delay` ms after the call arrived, so making it does not
  // add to the delay (as Stripe's own work is part of its response time).
  const list = url.pathname.replace(/^\/v1\//, '');
  let answer;
  if (req.method !== 'GET') {
    answer = [404, JSON.stringify({ error: { type: 'invalid_request_error', message: 'Unrecognized request URL' } })];
  } else if (list in counts) answer = page(list, url.searchParams);
  else answer = [200, JSON.stringify({ object: 'list', url: url.pathname, has_more: false, data: [] })];
  const body = answer[1];
  const id = stats.requests;
  setTimeout(() => {
    stats.in_flight -= 1;
    stats.last = Date.now();
    if (answer[0] === 200 && list in counts) stats.pages += 1;
    res.writeHead(answer[0], { 'content-type': 'application/json', 'request-id': `req_bench${id}` });
    res.end(body);
  }, Math.max(0, delay - (performance.now() - now)));
});
server.listen(port, '127.0.0.1', () => console.log(`stripe stand-in on http://127.0.0.1:${port} (${delay} ms, ${limit}/s)`));
