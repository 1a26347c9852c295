// Starts the real `tally serve` binary on a free loopback port with a fresh SQLite database, and
// launches Debian's Chromium through playwright-core. Used by every browser test.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { createHmac } from 'node:crypto';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export const WEBHOOK_SECRET = 'whsec_end2end_secret';

/** Delivers an event the way Stripe does: signed over the raw body. */
export async function sendWebhook(base, event) {
  const body = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex');
  return fetch(`${base}/stripe/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${v1}` },
    body,
  });
}

export const OWNER = { email: 'owner@example.com', password: 'correct horse battery staple' };

/** Logs in through the login form and waits for the overview. */
export async function logIn(page, base, { email, password } = OWNER) {
  await page.goto(base + '/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(base + '/');
}

/**
 * `extraEnv`: variables, or a function of Tally's base URL that returns them.
 * `options.seedDemo`: fill the database with the demo business of that many customers first.
 */
export async function startTally(extraEnv = {}, options = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tally-e2e-'));
  const port = await freePort();
  const extra = typeof extraEnv === 'function' ? extraEnv(`http://127.0.0.1:${port}`) : extraEnv;
  const bin = process.env.TALLY_BIN ?? join(root, 'target', 'debug', 'tally');
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: `sqlite://${join(dir, 'tally.db')}`,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT ?? join(root, 'target', 'site'),
    TALLY_SITE_CONFIG: join(root, 'Leptos.toml'),
    RUST_LOG: 'warn',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    ...extra,
  };
  // An owner to log in with, created the way an operator would.
  const created = spawnSync(bin, ['create-admin', '--email', OWNER.email, '--role', 'owner'], {
    cwd: dir,
    env,
    input: OWNER.password + '\n',
    encoding: 'utf8',
  });
  if (created.status !== 0) throw new Error(`create-admin failed: ${created.stderr}`);
  if (options.seedDemo) {
    const seeded = spawnSync(bin, ['seed-demo', '--customers', String(options.seedDemo)], { cwd: dir, env, encoding: 'utf8' });
    if (seeded.status !== 0) throw new Error(`seed-demo failed: ${seeded.stderr}`);
  }
  const child = spawn(bin, ['serve'], { cwd: dir, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tally exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error('tally did not become ready within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * Starts Tally and a browser before the file's tests and stops both after them. Returns an object
 * whose `tally` and `browser` are set once the `before` hook has run.
 */
export function withTallyAndBrowser(extraEnv = {}) {
  const ctx = { tally: undefined, browser: undefined };
  before(async () => {
    ctx.tally = await startTally(extraEnv);
    ctx.browser = await launchBrowser();
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.tally?.stop();
  });
  return ctx;
}
