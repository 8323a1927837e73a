// The playground's browser test: serves web/dist on 127.0.0.1, opens the
// page with ?test=1 in headless Chromium (WebGPU through SwiftShader where
// there is no GPU), waits for the results the page posts to /report, takes a
// full-page screenshot and checks the results and the screenshot's pixels.
//
//   node web/test/run.mjs [--out DIR] [--timeout SECONDS]
//
// CHROMIUM names the browser (default /usr/bin/chromium). Exits non-zero,
// saying why, on any failure, including a machine with no browser.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch } from './serve.mjs';
import { PNG } from 'pngjs';
import { spawnSync } from 'node:child_process';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..', 'dist');
const args = process.argv.slice(2);
const opt = (name, d) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : d; };
const outDir = path.resolve(opt('--out', path.join(here, 'out')));
const timeoutSeconds = Number(opt('--timeout', '300'));
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';

// Exit codes: 1 a check failed, 3 the browser failed to start, crashed or
// went silent (scripts/web-test.sh retries those once).
function fail(message, code = 1) {
  console.error(`web test FAILED: ${message}`);
  process.exit(code);
}

if (!fs.existsSync(path.join(dist, 'index.html'))) fail(`no built page at ${dist}: run scripts/web.sh --build-only first`);
if (!fs.existsSync(browserPath)) {
  fail(`no browser at ${browserPath}: install Chromium (apt-get install chromium) or set CHROMIUM to one; ` +
    'the web test never passes without running the page');
}

const { port, reported, close: closeServer } = await serve(dist);

const launchStart = Date.now();
const browser = await launch(browserPath).catch((e) => fail(`could not start ${browserPath}: ${e.message}`, 3));
console.error(`web test: browser started in ${((Date.now() - launchStart) / 1000).toFixed(1)} s`);
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('console', (m) => { if (process.env.WEB_TEST_VERBOSE || m.type() === 'error' || m.type() === 'warning') console.error(`page ${m.type()}: ${m.text()}`); });
page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
let gone;
const died = new Promise((_, reject) => { gone = reject; });
page.on('crash', () => gone(new Error('the page crashed (out of memory, or the GPU process died)')));
browser.on('disconnected', () => gone(new Error('the browser exited before the page reported')));
const started = Date.now();
console.error(`web test: opening http://127.0.0.1:${port}/index.html?test=1 in ${browserPath}`);
await page.goto(`http://127.0.0.1:${port}/index.html?test=1`).catch((e) => fail(`the page did not load: ${e.message}`, 3));
const timer = new Promise((_, reject) => setTimeout(() => reject(new Error(`the page reported nothing within ${timeoutSeconds} s`)), timeoutSeconds * 1000));
let result;
try {
  // The page posts its results to /report and also leaves them in
  // window.fusedmlpTestResult: whichever arrives first.
  const inPage = page
    .waitForFunction(() => window.fusedmlpTestResult !== undefined, null, { timeout: 0, polling: 250 })
    .then(() => page.evaluate(() => JSON.stringify(window.fusedmlpTestResult)));
  result = JSON.parse(await Promise.race([reported, inPage, timer, died]));
} catch (e) {
  await fs.promises.mkdir(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, 'timeout.png'), fullPage: true }).catch(() => {});
  await browser.close().catch(() => {});
  closeServer();
  fail(e.message, 3);
}
const seconds = (Date.now() - started) / 1000;
fs.mkdirSync(outDir, { recursive: true });
const shot = path.join(outDir, 'playground.png');
await page.screenshot({ path: shot, fullPage: true });
fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(result, null, 2));

// ---- bad settings in the URL ----------------------------------------------------
// Each opens the page (not in test mode) with one bad value: the page must
// name the field and its range, and a step must then train (a working page).
const BAD_URLS = [
  ['depth=-1', /Depth must be a whole number from 1 to 50/],
  ['lr=NaN', /Learning rate must be a number above 0 and at most 10, not 'NaN'/],
  ['width=100000', /Width must be a whole number from 1 to 512, not 100000; using 512/],
  ['dataset=nope', /Data must be one of spirals, .*not 'nope'/],
];
const urlChecks = [];
for (const [query, expected] of BAD_URLS) {
  const p = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const check = { query };
  try {
    await p.goto(`http://127.0.0.1:${port}/index.html?${query}`);
    await p.waitForFunction(() => document.querySelectorAll('.run').length > 0 || document.querySelector('.message.error:not([hidden])'),
      null, { timeout: 60000, polling: 100 });
    check.message = (await p.textContent('#message')).trim();
    await p.click('#step');
    await p.waitForFunction(() => /^step [1-9]/.test(document.querySelector('.stats')?.textContent || ''), null, { timeout: 60000, polling: 100 });
    check.stats = (await p.textContent('.stats')).trim();
  } catch (e) {
    check.failure = e.message.split('\n')[0];
  }
  check.errors = errors;
  urlChecks.push({ ...check, expected });
  await p.close();
}

// ---- your own data: a CSV file given to the page's file input ----------------
// Two interleaved half-moons with a header; then a file with a ragged row.
const moons = ['x,y,label'];
for (let i = 0; i < 400; i++) {
  const label = i % 2, t = Math.PI * ((i * 0.618034) % 1);
  const [x, y] = label ? [1 - Math.cos(t), 0.5 - Math.sin(t)] : [Math.cos(t), Math.sin(t)];
  moons.push(`${(x + 0.05 * Math.sin(i * 12.9898)).toFixed(4)},${(y + 0.05 * Math.cos(i * 78.233)).toFixed(4)},${label}`);
}
const FILES = [
  { name: 'moons.csv', text: moons.join('\n') + '\n', trains: true },
  { name: 'ragged.csv', text: 'x,y,label\n0.5,0.25,1\n1,2\n', expected: /line 3 has 2 cells/ },
];
const csvChecks = [];
for (const f of FILES) {
  const p = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  const check = { name: f.name };
  try {
    await p.goto(`http://127.0.0.1:${port}/index.html?depth=4&width=16&lr=0.01`);
    await p.waitForFunction(() => document.querySelectorAll('.run').length > 0, null, { timeout: 60000, polling: 100 });
    await p.setInputFiles('#csvfile', { name: f.name, mimeType: 'text/csv', buffer: Buffer.from(f.text) });
    await p.waitForFunction((n) => document.querySelector('#dataset').value === 'csv' &&
      (document.querySelector('.run h2 span')?.textContent.includes('csv') || document.querySelector('.message.error:not([hidden])')),
    f.name, { timeout: 60000, polling: 100 });
    check.message = (await p.textContent('#message')).trim();
    if (f.trains) {
      await p.click('#start');
      await p.waitForFunction(() => /^step ([3-9]\d|\d{3,})/.test(document.querySelector('.stats')?.textContent || ''), null, { timeout: 120000, polling: 200 });
      await p.click('#pause');
      check.stats = (await p.textContent('.stats')).trim();
      check.label_columns = await p.$$eval('#csvlabel option', (o) => o.map((x) => x.textContent));
    }
  } catch (e) {
    check.failure = e.message.split('\n')[0];
  }
  check.errors = errors;
  csvChecks.push({ ...check, f });
  await p.close();
}

// ---- the spirals decision surface ----------------------------------------------
// Trained a little, both classes' colours must show in the surface's canvas.
const surface = {};
{
  const p = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  try {
    await p.goto(`http://127.0.0.1:${port}/index.html?dataset=spirals&depth=6&width=32&lr=0.01`);
    await p.waitForFunction(() => document.querySelectorAll('.run').length > 0, null, { timeout: 60000, polling: 100 });
    await p.click('#start');
    await p.waitForFunction(() => /^step ([6-9]\d|\d{3,})/.test(document.querySelector('.stats')?.textContent || ''), null, { timeout: 120000, polling: 200 });
    await p.click('#pause');
    await p.waitForTimeout(600);
    const file = path.join(outDir, 'surface.png');
    await p.locator('canvas[data-v=surface]').screenshot({ path: file });
    const img = PNG.sync.read(fs.readFileSync(file));
    // Class 0 is #1f77b4 (blue), class 1 #ff7f0e (orange), blended over white.
    let blue = 0, orange = 0;
    for (let i = 0; i < img.data.length; i += 4) {
      const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
      if (b > r + 25 && b > g) blue++;
      if (r > b + 40 && r > g + 10) orange++;
    }
    Object.assign(surface, { pixels: img.width * img.height, blue, orange, stats: (await p.textContent('.stats')).trim() });
  } catch (e) {
    surface.failure = e.message.split('\n')[0];
  }
  await p.close();
}
// ---- an experiment's address: opening it runs it ------------------------------
const linked = {};
{
  const p = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  try {
    await p.goto(`http://127.0.0.1:${port}/index.html?experiment=dying-relu`);
    await p.waitForFunction(() => /holds|fails/.test(document.querySelector('#finding')?.className || ''), null, { timeout: 180000, polling: 250 });
    linked.finding = (await p.textContent('#finding')).trim();
    linked.holds = await p.$eval('#finding', (e) => e.classList.contains('holds'));
    linked.runs = await p.$$eval('.run h2', (h) => h.map((x) => x.firstChild.textContent.trim()));
    await p.screenshot({ path: path.join(outDir, 'experiment.png'), fullPage: true });
  } catch (e) {
    linked.failure = e.message.split('\n')[0];
  }
  await p.close();
}
await browser.close();
closeServer();

// ---- checks ------------------------------------------------------------------
const problems = [];
if (!result.ok) fail(`the page reported an error: ${result.error}`);
console.log(`adapter: ${result.adapter.description}`);
console.log(`fused kernels: ${result.adapter.fused_kernel} design (subgroups of ${result.adapter.subgroup_min_size}; ` +
  `the adapter ${result.adapter_subgroups ? 'offers' : 'does not offer'} the subgroups feature)`);
// Where the adapter offers subgroups, the page asks for them and the
// fused stack runs its subgroup design.
if (result.adapter_subgroups && result.adapter.fused_kernel !== 'Subgroup') {
  problems.push(`the adapter offers subgroups but the fused kernels run the ${result.adapter.fused_kernel} design`);
}
const st = result.selftest || [];
if (st.length !== 20) problems.push(`self-test has ${st.length} activations, expected 20`);
for (const r of st) {
  const worst = Math.max(r.forward, r.backward, r.linear_forward, r.linear_backward);
  console.log(`self-test ${r.activation.padEnd(12)} worst error ${worst.toExponential(2)} of tolerance, NaN/inf ${r.special_values ? 'ok' : 'wrong'}: ${r.passes ? 'pass' : 'FAIL'}`);
  if (!r.passes) problems.push(`self-test: ${r.activation} fails (forward ${r.forward}, backward ${r.backward}, linear ${r.linear_forward}/${r.linear_backward}, special values ${r.special_values})`);
}
for (const s of result.steps || []) {
  console.log(`one step (${s.activation}, 20x64 digits, SGD): ${s.values} values, worst error ${s.worst.toExponential(2)} of the native tolerance: ${s.passes ? 'pass' : 'FAIL'}`);
  if (!s.passes) problems.push(`step check: ${s.activation} differs from the CPU reference step (worst ${s.worst} of tolerance)`);
}
if ((result.steps || []).length !== 2) problems.push('the step check did not run for both nets');
// The median of a run's calls' ms per step, its first call (which builds
// and compiles the kernels) left out.
const steady = (calls) => {
  const c = (calls || []).slice(1).sort((a, b) => a - b);
  return c.length ? c[c.length >> 1].toFixed(1) : '-';
};
const relu = (result.preset || []).find((r) => r.activation === 'relu');
const sigmoid = (result.preset || []).find((r) => r.activation === 'sigmoid');
if (!relu || !sigmoid) {
  problems.push('the ReLU-vs-sigmoid preset did not report both runs');
} else {
  for (const r of [relu, sigmoid]) {
    console.log(`preset ${r.activation}: ${r.steps} steps, batch loss ${r.first_loss.toFixed(4)} -> ${r.last_loss.toFixed(4)}, ` +
      `epochs ${JSON.stringify(r.epochs.map((e) => [e[0], Number(e[1].toFixed(4)), Number(e[4].toFixed(3))]))}, ` +
      `first/last hidden gradient norm ${r.first_to_last_hidden_grad_ratio.toExponential(2)}, ${r.ms_per_step.toFixed(1)} ms/step ` +
      `(${steady(r.call_ms)} ms/step after the first call, which compiles the kernels)`);
    if (r.divergence) problems.push(`${r.activation} diverged: ${r.divergence}`);
  }
  const reluEpochLoss = relu.epochs.length ? relu.epochs[relu.epochs.length - 1][1] : relu.last_loss;
  const firstEpochLoss = relu.epochs.length ? relu.epochs[0][1] : relu.first_loss;
  if (!(reluEpochLoss < 0.9 * relu.first_loss && reluEpochLoss <= firstEpochLoss)) problems.push(`the ReLU net's loss did not fall (${relu.first_loss} at the first step, ${reluEpochLoss} at the last epoch's end)`);
  if (!(sigmoid.first_to_last_hidden_grad_ratio < 1e-6)) problems.push(`the sigmoid net's first/last hidden gradient-norm ratio is ${sigmoid.first_to_last_hidden_grad_ratio}, not below 1e-6`);
}

// The experiments: each finding measured and holding, with its numbers.
const ex = result.experiments || {};
for (const [id, f] of Object.entries(ex)) console.log(`experiment ${id}: ${f.shown} (ms/step ${f.ms_per_step.map((m) => m.toFixed(0)).join(', ')})`);
const van = ex.vanishing, dying = ex['dying-relu'];
if (!van || !van.holds) problems.push(`the vanishing-gradient experiment's finding did not hold: ${van && van.shown}`);
else if (!(van.numbers.sigmoid < 1e-6 && van.numbers.relu > 1e-2)) problems.push(`vanishing: sigmoid ratio ${van.numbers.sigmoid}, ReLU ${van.numbers.relu}`);
if (!dying || !dying.holds) problems.push(`the dying-ReLU experiment's finding did not hold: ${dying && dying.shown}`);
else if (!(dying.numbers.relu_end > 0.4 && dying.numbers.leaky_end === 0 && dying.numbers.elu_end === 0)) {
  problems.push(`dying ReLU: ReLU ended with ${dying.numbers.relu_end} dead, leaky ${dying.numbers.leaky_end}, ELU ${dying.numbers.elu_end}`);
}
// What a user takes home: the model, read back natively, predicts as the page did.
const dl = result.download;
if (!dl) {
  problems.push('the page made no downloads');
} else {
  const model = path.join(outDir, 'relu.safetensors');
  const rows = path.join(outDir, 'rows.csv');
  fs.writeFileSync(model, Buffer.from(dl.model_base64, 'base64'));
  const lines = [];
  for (let i = 0; i < dl.rows.length; i += 64) lines.push(dl.rows.slice(i, i + 64).join(','));
  fs.writeFileSync(rows, lines.join('\n') + '\n');
  const bin = path.resolve(here, '..', '..', 'target', 'release', 'fusedmlp');
  const native = spawnSync(bin, ['predict', '--checkpoint', model, '--input', rows], { encoding: 'utf8' });
  if (native.status !== 0) {
    problems.push(`fusedmlp predict could not read the downloaded model: ${native.stderr || native.error}`);
  } else {
    const got = native.stdout.trim().split('\n').slice(1).flatMap((l) => l.split(',').map(Number));
    const worst = Math.max(...got.map((v, i) => Math.abs(v - dl.probabilities[i])));
    console.log(`downloaded model: ${fs.statSync(model).size} bytes; fusedmlp predict on ${lines.length} rows differs from the page by at most ${worst.toExponential(2)}`);
    if (got.length !== dl.probabilities.length || !(worst < 2e-3)) problems.push(`the downloaded model predicts differently natively (worst difference ${worst}, ${got.length} values against ${dl.probabilities.length})`);
  }
  console.log(`downloaded report: ${dl.report.steps} steps, ${dl.report.logged_steps} logged steps, ${dl.report.epochs.length} epochs; charts PNG ${dl.charts_png_bytes} bytes`);
  if (!(dl.report.logged_steps > 0 && dl.report.epochs.length > 0)) problems.push('the downloaded report has no logged steps or epochs');
  if (!(dl.charts_png_bytes > 10000)) problems.push(`the charts PNG is ${dl.charts_png_bytes} bytes`);
}
for (const c of csvChecks) {
  console.log(`CSV ${c.name}: message '${c.message}'${c.stats ? `; trained: ${c.stats}; label columns ${JSON.stringify(c.label_columns)}` : ''}${c.failure ? `; ${c.failure}` : ''}`);
  if (c.failure) problems.push(`CSV ${c.name}: ${c.failure}`);
  if (c.f.trains && !/batch loss \d/.test(c.stats || '')) problems.push(`CSV ${c.name} did not train`);
  if (c.f.expected && !c.f.expected.test(c.message || '')) problems.push(`CSV ${c.name}: the message '${c.message}' is not the loader's`);
  if (c.errors.length) problems.push(`CSV ${c.name}: page errors: ${c.errors.join('; ')}`);
}
console.log(`?experiment=dying-relu: runs ${JSON.stringify(linked.runs)}; ${linked.finding || linked.failure}`);
if (!linked.holds || JSON.stringify(linked.runs) !== JSON.stringify(['relu', 'leaky_relu', 'elu'])) {
  problems.push(`the dying-ReLU experiment's address did not run it to a holding finding (${JSON.stringify(linked)})`);
}
console.log(`spirals surface: ${JSON.stringify(surface)}`);
if (surface.failure || !(surface.blue > 0.05 * surface.pixels && surface.orange > 0.05 * surface.pixels)) {
  problems.push(`the spirals decision surface does not show both classes (${JSON.stringify(surface)})`);
}

// The adapter line names the adapter, not a debug string.
console.log(`adapter line: ${result.adapter_line}`);
if (!/^GPU: /.test(result.adapter_line || '') || /BrowserWebGpu|driver\s*\)/.test(result.adapter_line)) {
  problems.push(`the adapter line reads '${result.adapter_line}', not the adapter's name`);
}
// A lost device: a message, Restart offered, and runs that train after it.
const lost = result.device_loss || {};
console.log(`device loss: message '${lost.message}', restart offered ${lost.restart_offered}, steps after restart ${JSON.stringify(lost.steps_after_restart)}`);
if (!/lost/i.test(lost.message || '') || !lost.restart_offered) problems.push(`a lost device did not show a message with Restart (${JSON.stringify(lost)})`);
else if (!(lost.steps_after_restart || []).length || !lost.steps_after_restart.every((n) => n >= 1) || lost.message_after_restart) {
  problems.push(`Restart after a lost device did not give runs that train (${JSON.stringify(lost)})`);
}
for (const c of urlChecks) {
  console.log(`bad URL ?${c.query}: message '${c.message}'; then '${c.stats || c.failure}'`);
  if (!c.expected.test(c.message || '')) problems.push(`?${c.query}: the message '${c.message}' does not name the field and its range`);
  if (!c.stats) problems.push(`?${c.query}: the page did not train after the message (${c.failure})`);
  if (c.errors.length) problems.push(`?${c.query}: page errors: ${c.errors.join('; ')}`);
}

// The screenshot: not blank (many colours, much of it not background).
const png = PNG.sync.read(fs.readFileSync(shot));
const colours = new Set();
let ink = 0;
for (let i = 0; i < png.data.length; i += 4) {
  const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
  colours.add(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3));
  if (r < 235 || g < 235 || b < 235) ink++;
}
const inkFraction = ink / (png.width * png.height);
console.log(`screenshot ${shot}: ${png.width}x${png.height}, ${colours.size} distinct colours, ${(100 * inkFraction).toFixed(1)}% not background`);
if (colours.size < 50 || inkFraction < 0.03) problems.push(`the screenshot looks blank (${colours.size} colours, ${(100 * inkFraction).toFixed(1)}% ink)`);

console.log(`page finished in ${seconds.toFixed(1)} s`);
if (problems.length) fail(problems.join('; '));
console.log('web test passed');
process.exit(0);
