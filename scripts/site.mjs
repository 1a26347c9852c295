// Finishes the site directory after the browser bundle is built (scripts/build.sh): gives the
// bundle content-hashed names, writes the hash file the server reads, copies public/, and stores
// a brotli and a gzip copy next to every file (the server sends them as the browser accepts).
//
//   node scripts/site.mjs BUNDLE_DIR SITE_DIR
//
// BUNDLE_DIR holds tally.js, tally_bg.wasm (wasm-bindgen's output, optimised) and tally.css.
// Names are tally.<hash>.<ext>, the hash being MD5 in unpadded base64url (22 characters), as
// cargo-leptos names them; SITE_DIR/hash.txt lists them ("js: …", "wasm: …", "css: …").
import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const [bundle, site] = process.argv.slice(2);
if (!bundle || !site) {
  console.error('usage: node scripts/site.mjs BUNDLE_DIR SITE_DIR');
  process.exit(2);
}

const files = { js: 'tally.js', wasm: 'tally_bg.wasm', css: 'tally.css' };
// Built beside the old site, then swapped in, so a running server never sees half a site.
const next = `${site}.next`;
rmSync(next, { recursive: true, force: true });
mkdirSync(join(next, 'pkg'), { recursive: true });
if (existsSync('public')) cpSync('public', next, { recursive: true });

const lines = [];
for (const [kind, name] of Object.entries(files)) {
  const body = readFileSync(join(bundle, name));
  const hash = createHash('md5').update(body).digest('base64url');
  copyFileSync(join(bundle, name), join(next, 'pkg', `tally.${hash}.${kind}`));
  lines.push(`${kind}: ${hash}`);
}
writeFileSync(join(next, 'hash.txt'), lines.join('\n') + '\n');

function compressAll(dir) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      compressAll(path);
    } else if (!/\.(br|gz)$/.test(entry)) {
      const body = readFileSync(path);
      writeFileSync(`${path}.br`, brotliCompressSync(body, {
        params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: body.length },
      }));
      writeFileSync(`${path}.gz`, gzipSync(body, { level: 9 }));
    }
  }
}
compressAll(next);

const old = `${site}.old`;
rmSync(old, { recursive: true, force: true });
if (existsSync(site)) renameSync(site, old);
renameSync(next, site);
rmSync(old, { recursive: true, force: true });
console.log(`site: ${site} (${lines.join(', ')})`);
