// Summarises target/bench/results.jsonl (written by scripts/bench.sh): figures against the targets
// of docs/benchmarks.md and Tally's ratio to the peer (@supabase/stripe-sync-engine).
import fs from 'node:fs';

const file = process.argv[2] ?? 'target/bench/results.jsonl';
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const find = (backend, test) => rows.find((r) => r.backend === backend && r.test === test)?.result;
const mib = (kib) => (kib == null ? null : kib / 1024);
const fmt = (v, digits = 0) => (v == null || Number.isNaN(v) ? '—' : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const check = (v, ok) => (v == null ? '' : ok(v) ? 'met' : 'MISSED');

const lines = [];
const add = (what, value, target, verdict) => lines.push([what, value, target, verdict]);
for (const b of ['sqlite', 'postgres']) {
  const max = find(b, 'max_ingest');
  if (!max) continue;
  const at5k = find(b, 'ingest_at_5000');
  const rss = mib(find(b, 'ingest_peak_rss_kib'));
  const apply = find(b, 'apply_backlog');
  add(`${b}: acknowledged events/s (64 conns)`, fmt(max.acks_per_second), '≥ 15,000', check(max.acks_per_second, (v) => v >= 15000));
  add(`${b}: ack p99 at 5,000/s offered`, `${fmt(at5k?.p99_ms, 1)} ms`, '< 10 ms', check(at5k?.p99_ms, (v) => v < 10));
  add(`${b}: peak RSS while ingesting`, `${fmt(rss, 1)} MiB`, '< 50 MiB', check(rss, (v) => v < 50));
  add(`${b}: backlog applied, events/s`, fmt(apply?.events_per_second), '≥ 10,000', check(apply?.events_per_second, (v) => v >= 10000));
  add(`${b}: peak RSS while applying`, `${fmt(mib(apply?.peak_rss_kib), 1)} MiB`, '< 50 MiB', check(mib(apply?.peak_rss_kib), (v) => v < 50));
  const sustained = find(b, 'sustained');
  if (sustained) add(`${b}: sustained (acked and applied, worker on) events/s`, fmt(sustained.events_per_second), '', '');
}
const two = find('postgres', 'two_instances');
if (two) {
  const once = two.stored === two.events && two.applied === two.events && two.processed === two.events && two.customers === two.events;
  add('postgres, two instances: each event to both', `${fmt(two.ingest.acknowledged)} of ${fmt(two.events * 2)} deliveries acked; ${fmt(two.stored)} stored, ${fmt(two.processed)} applied`, 'each once', once ? 'met' : 'MISSED');
  add('postgres, two instances: stuck / deadlocks / migrations', `${two.stuck} / ${two.deadlocks} / ${two.migrations} of ${two.expected_migrations}`, '0 / 0 / all once', two.stuck === 0 && two.deadlocks === 0 && two.migrations === two.expected_migrations ? 'met' : 'MISSED');
}
// The price of durability: SQLite's durable default (synchronous FULL) beside NORMAL, one run.
const durable = find('sqlite', 'max_ingest');
const normal = find('sqlite_sync_normal', 'max_ingest');
if (durable && normal) {
  const ratio = durable.acks_per_second / normal.acks_per_second;
  add('sqlite acks/s: synchronous FULL (default) / NORMAL', `${fmt(durable.acks_per_second)} / ${fmt(normal.acks_per_second)} = ${fmt(ratio, 2)}`, '≥ 0.90', ratio >= 0.9 ? 'met' : 'MISSED');
}
const peer = find('peer', 'max_ingest');
if (peer) {
  const at5k = find('peer', 'ingest_at_5000');
  add('peer: events/s applied (ack = applied)', fmt(peer.acks_per_second), '', '');
  add('peer: ack p99 at 5,000/s offered', `${fmt(at5k?.p99_ms, 1)} ms`, '', '');
  add('peer: peak RSS', `${fmt(mib(find('peer', 'ingest_peak_rss_kib')), 1)} MiB`, '', '');
  for (const b of ['sqlite', 'postgres']) {
    const max = find(b, 'max_ingest');
    const apply = find(b, 'apply_backlog');
    if (max) add(`ratio ${b} acks / peer`, `${fmt(max.acks_per_second / peer.acks_per_second, 1)}×`, '', '');
    if (apply) add(`ratio ${b} apply / peer`, `${fmt(apply.events_per_second / peer.acks_per_second, 1)}×`, '', '');
    const sustained = find(b, 'sustained');
    if (sustained) {
      const ratio = sustained.events_per_second / peer.acks_per_second;
      add(`ratio ${b} sustained / peer`, `${fmt(ratio, 1)}×`, '≥ 4×', check(ratio, (v) => v >= 4));
    }
  }
}
for (const r of rows.filter((r) => r.test === 'page')) {
  const target = r.result.page === '/' ? 60 : 30;
  const first = r.result.first_ms == null ? '' : `first ${fmt(r.result.first_ms, 1)}, `;
  add(`page ${r.result.page} (${fmt(r.customers)} customers)`, `${first}p50 ${fmt(r.result.p50_ms, 1)}, p95 ${fmt(r.result.p95_ms, 1)} ms`, `p95 < ${target} ms`, check(r.result.p95_ms, (v) => v < target));
}
const liveRows = rows.filter((r) => r.test === 'page_live' && r.result.bench === 'page');
for (const r of liveRows) {
  const target = r.result.page === '/' ? 60 : 30;
  add(`page ${r.result.page} with ${r.result.webhooks_per_sec} webhooks/s`, `p50 ${fmt(r.result.p50_ms, 1)}, p95 ${fmt(r.result.p95_ms, 1)} ms`, `p95 < ${target} ms`, check(r.result.p95_ms, (v) => v < target));
}
const rss = mib(find('sqlite', 'pages_peak_rss_kib'));
if (rss != null) add('pages: peak RSS', `${fmt(rss, 1)} MiB`, '< 50 MiB', check(rss, (v) => v < 50));

// The growth run (`scripts/bench.sh --growth`): the same pages and the ingest at several sizes.
const growthPages = rows.filter((r) => r.test === 'growth_page' && r.start === 'first');
const sizes = [...new Set(growthPages.map((r) => r.customers))].sort((a, b) => a - b);
const growthPage = (size, page, start = 'first') =>
  rows.find((r) => r.test === 'growth_page' && r.customers === size && r.start === start && r.result.page === page)?.result;
const growthRss = (size) => {
  const peaks = rows
    .filter((r) => r.customers === size && (r.test === 'growth_pages_peak_rss_kib' || r.test === 'growth_ingest'))
    .map((r) => (typeof r.result === 'number' ? r.result : r.result.peak_rss_kib));
  return peaks.length ? Math.max(...peaks) : null;
};
const pagesOf = [...new Set(growthPages.map((r) => r.result.page))];
if (sizes.length > 1) {
  const [small, large] = [sizes[0], sizes[sizes.length - 1]];
  // The target's figure comes from the comparison with requests alternating between the two
  // sizes when the run made one; else from the sizes measured one after the other.
  const compare = rows.filter((r) => r.test === 'growth_compare' && r.result.bench === 'page');
  const compared = (page, ofSmallest) =>
    compare.find((r) => r.result.page === page && (r.result.url === r.small_url) === ofSmallest)?.result;
  for (const page of pagesOf) {
    if (compared(page, true) && compared(page, false)) {
      const [a, b] = [compared(page, true), compared(page, false)];
      add(`growth: page ${page} p95 at ${fmt(large)} / ${fmt(small)} customers, alternating (${a.requests} each)`, `${fmt(b.p95_ms, 1)} / ${fmt(a.p95_ms, 1)} ms = ${fmt(b.p95_ms / a.p95_ms, 2)}×`, '≤ 1.3×', check(b.p95_ms / a.p95_ms, (v) => v <= 1.3));
      continue;
    }
    const a = growthPage(small, page)?.p95_ms;
    const b = growthPage(large, page)?.p95_ms;
    if (a && b) add(`growth: page ${page} p95 at ${fmt(large)} / ${fmt(small)} customers`, `${fmt(b, 1)} / ${fmt(a, 1)} ms = ${fmt(b / a, 2)}×`, '≤ 1.3×', check(b / a, (v) => v <= 1.3));
  }
  for (const size of sizes) {
    const peak = mib(growthRss(size));
    add(`growth: peak RSS at ${fmt(size)} customers`, `${fmt(peak, 1)} MiB`, '< 64 MiB', check(peak, (v) => v < 64));
  }
}

const width = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i].length)));
console.log('Summary (targets from docs/benchmarks.md):');
for (const l of lines) console.log(`  ${l[0].padEnd(width[0])}  ${l[1].padStart(width[1])}  ${l[2].padEnd(width[2])}  ${l[3]}`);

// `--markdown`: the tables and charts of docs/benchmarks.md, from the same results.
if (process.argv.includes('--markdown')) {
  const out = [];
  const bar = (value, max, width = 40) => '█'.repeat(Math.max(0, Math.round((value / max) * width)));
  const ms = (v) => (v == null ? '—' : `${fmt(v, 1)} ms`);
  const row = (cells) => out.push(`| ${cells.join(' | ')} |`);
  const get = (b, t) => find(b, t);
  const acks = (b) => get(b, 'max_ingest')?.acks_per_second;
  if (acks('sqlite') || acks('postgres')) {
  out.push('| measurement | SQLite | Postgres 15 | peer (stripe-sync-engine) | target |');
  out.push('|---|---|---|---|---|');
  row(['acknowledged events/s (64 connections)', fmt(acks('sqlite')), fmt(acks('postgres')), fmt(acks('peer')), '≥ 15,000']);
  const lat = (b, t) => {
    const r = get(b, t);
    return r ? `${fmt(r.p50_ms, 1)} / ${fmt(r.p95_ms, 1)} / ${fmt(r.p99_ms, 1)} ms` : '—';
  };
  row(['ack latency at max rate p50 / p95 / p99', lat('sqlite', 'max_ingest'), lat('postgres', 'max_ingest'), lat('peer', 'max_ingest'), '—']);
  row(['ack latency at 5,000/s offered p50 / p95 / p99', lat('sqlite', 'ingest_at_5000'), lat('postgres', 'ingest_at_5000'), lat('peer', 'ingest_at_5000'), 'p99 < 10 ms']);
  const rssOf = (b, t) => (get(b, t) == null ? '—' : `${fmt(mib(get(b, t)), 1)} MiB`);
  row(['peak memory while ingesting', rssOf('sqlite', 'ingest_peak_rss_kib'), rssOf('postgres', 'ingest_peak_rss_kib'), rssOf('peer', 'ingest_peak_rss_kib'), '< 50 MiB']);
  const apply = (b) => get(b, 'apply_backlog');
  const applyText = (b) => (apply(b) ? `${fmt(apply(b).events_per_second)} events/s (${fmt(apply(b).events)} in ${apply(b).seconds} s)` : '—');
  row(['backlog applied', applyText('sqlite'), applyText('postgres'), `${fmt(acks('peer'))} events/s (applies as it acknowledges)`, '≥ 10,000/s']);
  const applyRss = (b) => (apply(b) ? `${fmt(mib(apply(b).peak_rss_kib), 1)} MiB` : '—');
  row(['peak memory while applying', applyRss('sqlite'), applyRss('postgres'), '—', '< 50 MiB']);
  const sus = (b) => get(b, 'sustained');
  const susText = (b) => (sus(b) ? `${fmt(sus(b).events_per_second)} events/s (${fmt(sus(b).events)} in ${sus(b).seconds_until_applied} s; acked at ${fmt(sus(b).ingest.acks_per_second)}/s)` : '—');
  row(['acknowledged and applied, worker on (sustained)', susText('sqlite'), susText('postgres'), `${fmt(acks('peer'))} events/s`, '≥ 4× the peer']);
  out.push('');
  const peerAcks = acks('peer');
  if (peerAcks) {
    out.push(`Ratios to the peer: acknowledged ${fmt(acks('sqlite') / peerAcks, 1)}× (SQLite) and ${fmt(acks('postgres') / peerAcks, 1)}× (Postgres); applied ${fmt(apply('sqlite')?.events_per_second / peerAcks, 1)}× and ${fmt(apply('postgres')?.events_per_second / peerAcks, 1)}×; sustained (acknowledged and applied with the worker on) ${fmt(sus('sqlite')?.events_per_second / peerAcks, 1)}× and ${fmt(sus('postgres')?.events_per_second / peerAcks, 1)}×.`);
    out.push('');
  }
  const two = find('postgres', 'two_instances');
  if (two) {
    out.push(`Two instances on one Postgres (started together on a new database), each of ${fmt(two.events)} signed events posted to both at once: ${fmt(two.ingest.acknowledged)} of ${fmt(two.events * 2)} deliveries acknowledged (${fmt(two.ingest.acks_per_second)}/s, p99 ${fmt(two.ingest.p99_ms, 1)} ms), ${fmt(two.stored)} events stored, ${fmt(two.processed)} applied (the two workers' counts added up), ${fmt(two.customers)} customer rows, ${two.stuck} stuck, ${two.deadlocks} deadlocks in the logs, migrations applied once (${two.migrations} of ${two.expected_migrations}); all applied ${fmt(two.seconds_until_applied, 1)} s after the first delivery.`);
    out.push('');
  }
  const series = [
    ['SQLite, acknowledged', acks('sqlite')],
    ['Postgres, acknowledged', acks('postgres')],
    ['SQLite, applied', apply('sqlite')?.events_per_second],
    ['Postgres, applied', apply('postgres')?.events_per_second],
    ['peer, applied = acknowledged', peerAcks],
  ].filter(([, v]) => v != null);
  const top = Math.max(...series.map(([, v]) => v), 15000);
  out.push('```');
  out.push('events per second (2 cores, load generator on the same machine)');
  for (const [label, v] of series) out.push(`${label.padEnd(30)} |${bar(v, top)} ${fmt(v)}`);
  out.push(`${'target'.padEnd(30)} |${'·'.repeat(Math.round((15000 / top) * 40) - 1)}| 15,000 (ack), 10,000 (apply)`);
  out.push('```');
  out.push('');
  }
  const pageRows = rows.filter((r) => r.test === 'page');
  if (pageRows.length) {
    const ds = find('sqlite', 'dataset');
    const dataset = ds
      ? `${fmt(ds.customers)} customers, ${fmt(ds.subscriptions)} subscriptions, ${fmt(ds.charges)} charges, ${fmt(ds.invoices)} invoices, ${fmt(ds.events)} events over 24 months; SQLite, ${fmt(ds.bytes / 2 ** 30, 1)} GiB`
      : `${fmt(pageRows[0].customers)} customers`;
    out.push(`Pages on the demo dataset (${dataset}), ${pageRows[0].result.requests} requests each, one after another:`);
    out.push('');
    const live = (page) => rows.find((r) => r.test === 'page_live' && r.result.page === page)?.result;
    const liveTraffic = rows.find((r) => r.test === 'page_live' && r.result.bench === 'live_traffic')?.result;
    const rate = liveTraffic?.webhooks_per_sec;
    out.push(`| page | first request (computes) | p50 | p95 | p50 / p95 with ${rate ?? '—'} webhooks/s | HTML | target (p95) |`);
    out.push('|---|---|---|---|---|---|---|');
    for (const r of pageRows) {
      const target = r.result.page === '/' ? 60 : 30;
      const l = live(r.result.page);
      out.push(`| \`${r.result.page}\` | ${ms(r.result.first_ms)} | ${ms(r.result.p50_ms)} | ${ms(r.result.p95_ms)} | ${l ? `${ms(l.p50_ms)} / ${ms(l.p95_ms)}` : '—'} | ${fmt(r.result.bytes / 1024)} KiB | < ${target} ms |`);
    }
    if (liveTraffic) {
      out.push('');
      out.push(`With live traffic: ${fmt(liveTraffic.acknowledged)} signed events (new charges and subscriptions) acknowledged and applied over ${fmt(liveTraffic.seconds, 0)} s while each page was requested 4 times a second.`);
    }
    const prss = find('sqlite', 'pages_peak_rss_kib');
    out.push('');
    if (prss != null) out.push(`Peak memory of the server while serving these pages: ${fmt(mib(prss), 1)} MiB (target < 50 MiB).`);
    out.push('');
    const pmax = Math.max(...pageRows.map((r) => Math.max(r.result.p95_ms, r.result.first_ms ?? 0)), 60);
    out.push('```');
    out.push(`page latency (ms): ▓ first request (computes), █ p95 (cached), ▒ p95 with ${rate ?? '—'} webhooks/s`);
    for (const r of pageRows) {
      if (r.result.first_ms != null) out.push(`${r.result.page.padEnd(16)} |${'▓'.repeat(Math.max(1, Math.round((r.result.first_ms / pmax) * 40)))} ${fmt(r.result.first_ms, 1)}`);
      out.push(`${''.padEnd(16)} |${'█'.repeat(Math.max(1, Math.round((r.result.p95_ms / pmax) * 40)))} ${fmt(r.result.p95_ms, 1)}`);
      const l = live(r.result.page);
      if (l) out.push(`${''.padEnd(16)} |${'▒'.repeat(Math.max(1, Math.round((l.p95_ms / pmax) * 40)))} ${fmt(l.p95_ms, 1)}`);
    }
    out.push('```');
  }
  if (sizes.length) {
    out.push('');
    out.push('Growth run (`scripts/bench.sh --growth`), SQLite, the same business shape at each size (2 subscriptions and 20 charges per customer over 24 months):');
    out.push('');
    out.push('| customers | subscriptions | charges | database | acknowledged events/s (20,000 into it, worker on) | applied events/s (until the inbox is empty) | peak memory |');
    out.push('|---|---|---|---|---|---|---|');
    for (const size of sizes) {
      const d = rows.find((r) => r.test === 'growth_dataset' && r.customers === size)?.result ?? {};
      const g = rows.find((r) => r.test === 'growth_ingest' && r.customers === size)?.result;
      out.push(`| ${fmt(size)} | ${fmt(d.subscriptions)} | ${fmt(d.charges)} | ${d.bytes ? fmt(d.bytes / 2 ** 30, 1) : '—'} GiB | ${fmt(g?.ingest?.acks_per_second)} | ${fmt(g?.events_per_second_applied)} | ${fmt(mib(growthRss(size)), 1)} MiB |`);
    }
    out.push('');
    out.push(`Pages, p50 / p95 of 40 requests, then the first request after the first start (computes everything) and after a restart (what a deploy meets), ms:`);
    out.push('');
    out.push(`| page | ${sizes.map((s) => `${fmt(s)}: p50 / p95`).join(' | ')} | p95 ${fmt(sizes[sizes.length - 1])} ÷ ${fmt(sizes[0])} |`);
    out.push(`|---|${sizes.map(() => '---|').join('')}---|`);
    for (const page of pagesOf) {
      const cells = sizes.map((s) => {
        const r = growthPage(s, page);
        return r ? `${fmt(r.p50_ms, 1)} / ${fmt(r.p95_ms, 1)}` : '—';
      });
      const ratio = growthPage(sizes[sizes.length - 1], page)?.p95_ms / growthPage(sizes[0], page)?.p95_ms;
      out.push(`| \`${page}\` | ${cells.join(' | ')} | ${fmt(ratio, 2)}× |`);
    }
    out.push('');
    out.push(`| page | ${sizes.map((s) => `${fmt(s)}: first / after restart`).join(' | ')} |`);
    out.push(`|---|${sizes.map(() => '---|').join('')}`);
    for (const page of pagesOf) {
      const cells = sizes.map((s) => `${fmt(growthPage(s, page)?.first_ms, 1)} / ${fmt(growthPage(s, page, 'restart')?.first_ms, 1)}`);
      out.push(`| \`${page}\` | ${cells.join(' | ')} |`);
    }
    out.push('');
    const gmax = Math.max(...growthPages.map((r) => r.result.p95_ms), ...pagesOf.flatMap((p) => sizes.map((s) => growthPage(s, p, 'restart')?.first_ms ?? 0)), 1);
    out.push('```');
    out.push('ms as the data grows: █ p95 (cached), ▓ first request after a restart');
    for (const page of pagesOf) {
      for (const s of sizes) {
        const r = growthPage(s, page);
        const restart = growthPage(s, page, 'restart');
        const label = s === sizes[0] ? page : '';
        out.push(`${label.padEnd(15)} ${fmt(s).padStart(7)} |${'█'.repeat(Math.max(1, Math.round(((r?.p95_ms ?? 0) / gmax) * 40)))} ${fmt(r?.p95_ms, 1)}`);
        out.push(`${''.padEnd(15)} ${''.padStart(7)} |${'▓'.repeat(Math.max(1, Math.round(((restart?.first_ms ?? 0) / gmax) * 40)))} ${fmt(restart?.first_ms, 1)}`);
      }
    }
    out.push('```');
  }
  console.log('\n' + out.join('\n'));
}
