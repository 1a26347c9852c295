// Summarises target/bench/results.jsonl (written by scripts/bench.sh): figures against the targets
// of docs/benchmarks.md and Tally's ratio to the peer (@supabase/stripe-sync-engine).
import fs from 'node:fs';

const file = process.argv[2] ?? 'target/bench/results.jsonl';
const rows = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const find = (backend, test) => rows.find((r) => r.backend === backend && r.test === test)?.result;
const mib = (kib) => (kib == null ? null : kib / 1024);
const fmt = (v, digits = 0) => (v == null ? '—' : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
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
  }
}
for (const r of rows.filter((r) => r.test === 'page')) {
  const target = r.result.page === '/' ? 60 : 30;
  add(`page ${r.result.page} p50 / p95 (${fmt(r.customers)} customers)`, `${fmt(r.result.p50_ms, 1)} / ${fmt(r.result.p95_ms, 1)} ms`, `p95 < ${target} ms`, check(r.result.p95_ms, (v) => v < target));
}
const rss = mib(find('sqlite', 'pages_peak_rss_kib'));
if (rss != null) add('pages: peak RSS', `${fmt(rss, 1)} MiB`, '< 50 MiB', check(rss, (v) => v < 50));

const width = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i].length)));
console.log('Summary (targets from docs/benchmarks.md):');
for (const l of lines) console.log(`  ${l[0].padEnd(width[0])}  ${l[1].padStart(width[1])}  ${l[2].padEnd(width[2])}  ${l[3]}`);
