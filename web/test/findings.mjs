// Runs every experiment of the playground in headless Chromium and prints
// the finding each measured (what the README and the notes quote):
//
//   scripts/web.sh --build-only && node web/test/findings.mjs [--only ID,ID] [--shot DIR]
//
// Not part of the test command (the experiments together take minutes on
// SwiftShader); the web test runs two of them.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch } from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..', 'dist');
const args = process.argv.slice(2);
const opt = (name, d) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const ids = (opt('--only', '') || 'vanishing,dying-relu,initialisation,normalisation,residual,selu,clipping,cost').split(',');
const shots = opt('--shot', null);

const { port, close } = await serve(dist);
const browser = await launch(process.env.CHROMIUM || '/usr/bin/chromium');
let failures = 0;
for (const id of ids) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => console.error(`${id}: page error: ${e.message}`));
  const t = Date.now();
  try {
    await page.goto(`http://127.0.0.1:${port}/index.html?experiment=${id}`);
    await page.waitForFunction(() => /holds|fails/.test(document.querySelector('#finding')?.className || ''), null, { timeout: 600000, polling: 500 });
    const finding = (await page.textContent('#finding')).trim();
    const holds = await page.$eval('#finding', (e) => e.classList.contains('holds'));
    console.log(`${id} (${((Date.now() - t) / 1000).toFixed(0)} s, ${holds ? 'holds' : 'does not hold'}): ${finding}\n`);
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, `${id}.png`), fullPage: true });
    }
  } catch (e) {
    failures++;
    console.log(`${id}: no finding (${e.message.split('\n')[0]}); message: ${await page.textContent('#message').catch(() => '')}`);
  }
  await page.close();
}
await browser.close();
close();
process.exit(failures ? 1 : 0);
