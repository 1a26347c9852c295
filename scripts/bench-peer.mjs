// The peer in the benchmark: @supabase/stripe-sync-engine behind a plain node:http server, as its
// README suggests for a self-hosted webhook endpoint. scripts/bench.sh installs the package from
// npm into target/bench/peer (never committed) and feeds this server the same signed events as Tally.
//
//   PEER_DIR=target/bench/peer DATABASE_URL=postgres://… STRIPE_WEBHOOK_SECRET=whsec_… PORT=3999 \
//     node scripts/bench-peer.mjs
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

// The CommonJS build: the package's ES module build refers to __dirname and cannot migrate.
const dir = path.resolve(process.env.PEER_DIR ?? 'target/bench/peer');
const require = createRequire(path.join(dir, 'package.json'));
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine');

const databaseUrl = process.env.DATABASE_URL;
const port = Number(process.env.PORT ?? 3999);
const logger = { info() {}, warn() {}, error: (e, msg) => console.error(msg, e) };
await runMigrations({ databaseUrl, schema: 'stripe', logger });
const sync = new StripeSync({
  poolConfig: { connectionString: databaseUrl },
  schema: 'stripe',
  stripeSecretKey: 'sk_test_peer_benchmark',
  stripeWebhookSecret: process.env.STRIPE_WEBHOOK_SECRET,
});

const server = http.createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(req.url === '/healthz' ? 200 : 404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      await sync.processWebhook(Buffer.concat(chunks), req.headers['stripe-signature']);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    } catch (e) {
      res.writeHead(400).end(String(e?.message ?? e));
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => console.log(`peer listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
