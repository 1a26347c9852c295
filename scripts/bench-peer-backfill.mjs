// The peer's backfill in the backfill benchmark (scripts/bench-sync.sh): @supabase/stripe-sync-engine's
// syncBackfill for customers, then charges, as its `all` mode runs them, against the same Stripe
// stand-in as Tally. The engine builds its Stripe client for api.stripe.com; this harness gives it
// the same client (the `stripe` package it depends on) pointed at the stand-in instead.
//
//   PEER_DIR=target/bench/peer DATABASE_URL=postgres://… STRIPE_PORT=38xx node scripts/bench-peer-backfill.mjs
import path from 'node:path';
import { createRequire } from 'node:module';

const dir = path.resolve(process.env.PEER_DIR ?? 'target/bench/peer');
const require = createRequire(path.join(dir, 'package.json'));
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine');
const Stripe = require('stripe');

const databaseUrl = process.env.DATABASE_URL;
const key = 'sk_test_peer_backfill_benchmark';
const logger = { info() {}, warn() {}, error: (e, msg) => console.error(msg, e) };
await runMigrations({ databaseUrl, schema: 'stripe', logger });
const sync = new StripeSync({
  poolConfig: { connectionString: databaseUrl },
  schema: 'stripe',
  stripeSecretKey: key,
  stripeWebhookSecret: 'whsec_unused',
});
sync.stripe = new Stripe(key, {
  host: '127.0.0.1',
  port: Number(process.env.STRIPE_PORT),
  protocol: 'http',
  maxNetworkRetries: 5,
});
const customers = await sync.syncBackfill({ object: 'customer' });
const charges = await sync.syncBackfill({ object: 'charge' });
console.log(JSON.stringify({ customers, charges }));
process.exit(0);
