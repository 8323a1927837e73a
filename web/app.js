// The fusedmlp playground: the page's controls, the training loop and the
// live views. Training, diagnostics, the decision surface and the
// self-test all run in the WebAssembly module (the crate itself) on the
// browser's WebGPU device; this file only schedules calls and draws.
import init, { gpuInfo, selfTest, checkStep, readSettings, loseDevice, Session } from './pkg/fusedmlp_web.js';
import { EXPERIMENTS, experimentById } from './experiments.js';

// The fused kernels' fastest design exchanges activations between the
// invocations of a subgroup. wgpu 30's WebGPU backend does not ask the
// adapter for the `subgroups` feature, so every device request the module
// makes asks for it where the adapter has it (the crate checks the device
// it gets and falls back to workgroup memory without it).
if (globalThis.GPUAdapter && !GPUAdapter.prototype.requestDevice.asksForSubgroups) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  const withSubgroups = function (descriptor = {}) {
    const features = [...(descriptor.requiredFeatures || [])];
    if (this.features.has('subgroups') && !features.includes('subgroups')) features.push('subgroups');
    return requestDevice.call(this, { ...descriptor, requiredFeatures: features });
  };
  withSubgroups.asksForSubgroups = true;
  GPUAdapter.prototype.requestDevice = withSubgroups;
}

const ACTIVATIONS = ['relu', 'leaky_relu', 'prelu', 'elu', 'selu', 'celu', 'gelu', 'gelu_tanh', 'sigmoid',
  'tanh', 'softplus', 'silu', 'mish', 'hardtanh', 'relu6', 'hardsigmoid', 'hardswish', 'softsign',
  'log_sigmoid', 'identity'];
const FIELDS = {
  dataset: 'spirals', depth: 20, width: 32, activation: 'relu', init: 'default', optimizer: 'adam',
  lr: 0.003, batch: 32, norm: 'none', residual: false, dropout: 0, clip: 0, seed: 0,
};
const CLASS_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf'];
const LOG_EVERY = 10;
const EXTENT = 2.6;
const TEST = new URLSearchParams(location.search).get('test') === '1';

const $ = (id) => document.getElementById(id);
let runs = [];
let running = false;
let busy = false;
// The experiment whose runs are on the page, if any (a restart after a
// lost device rebuilds the same runs).
let experiment = null;
// The CSV file chosen in the page: {name, text, label} (label: 0-based column).
let uploaded = null;
// What was wrong with the URL's settings, shown when the first runs are built.
let urlProblems = [];

// ---- messages ---------------------------------------------------------
function say(text, error = false) {
  const m = $('message');
  m.hidden = !text;
  m.textContent = text || '';
  m.className = error ? 'message error' : 'message';
}
function describeError(e) {
  const text = String(e && e.message ? e.message : e);
  if (e instanceof WebAssembly.RuntimeError) {
    return `The WebAssembly module stopped (${text}). This is a bug in fusedmlp: please report it with this ` +
      'page\'s address. Reload the page to go on.';
  }
  if (/limit/i.test(text) && /adapter|device|request/i.test(text)) {
    return `The GPU adapter refused a limit the kernels need: ${text}. Try another browser or GPU.`;
  }
  return text;
}
// A lost device (driver reset, GPU removed or out of memory) ends every run
// on it; Restart builds them again on a new device.
function isDeviceLoss(text) {
  return /device was lost|device lost|out of memory/i.test(text);
}
async function failed(e) {
  let text = describeError(e);
  running = false;
  // The browser reports a lost device asynchronously: a call that failed
  // for it can return first, so look again after the loss has had a turn.
  await new Promise((r) => setTimeout(r, 100));
  const lost = runs.some((r) => { try { return r.session.deviceLost(); } catch (_) { return false; } });
  if (lost && !isDeviceLoss(text)) text = `The GPU device was lost (${text})`;
  if (lost || isDeviceLoss(text)) {
    say(`${text}. Press Restart to build the runs again on a new GPU device.`, true);
    $('restart').hidden = false;
  } else {
    say(text, true);
  }
}

// ---- settings <-> URL ---------------------------------------------------
// Every setting travels as text (URL, form) and is checked by the module
// against one table of ranges (web/src/settings.rs): a bad value is
// replaced and named in a message, never passed on.
function checkSettings(texts) {
  return JSON.parse(readSettings(JSON.stringify(texts)));
}
function formTexts() {
  const t = {};
  for (const [k, d] of Object.entries(FIELDS)) {
    const el = $(k);
    t[k] = typeof d === 'boolean' ? (el.checked ? '1' : '0') : el.value;
  }
  return t;
}
// The form's settings, checked: {config, problems}; bad values are
// replaced in the form too.
function readForm() {
  const checked = checkSettings(formTexts());
  if (checked.problems.length) writeForm(checked.config);
  return checked;
}
function writeForm(c) {
  for (const [k, d] of Object.entries(FIELDS)) {
    const el = $(k);
    if (typeof d === 'boolean') el.checked = !!c[k];
    else el.value = c[k];
  }
}
function configFromUrl() {
  const q = new URLSearchParams(location.search);
  const texts = {};
  for (const k of Object.keys(FIELDS)) if (q.has(k)) texts[k] = q.get(k);
  // The first preset's old address still opens it.
  const id = q.get('experiment') || (q.get('preset') === 'relu-vs-sigmoid' ? 'vanishing' : null);
  const checked = checkSettings(texts);
  if (id && !experimentById(id)) {
    checked.problems.push(`Experiment must be one of ${EXPERIMENTS.map((e) => e.id).join(', ')}, not '${id}'.`);
  }
  return { ...checked, experiment: id && experimentById(id) ? id : null };
}
function saveUrl(c, exp) {
  const q = new URLSearchParams();
  for (const [k, d] of Object.entries(FIELDS)) q.set(k, typeof d === 'boolean' ? (c[k] ? '1' : '0') : c[k]);
  if (exp) q.set('experiment', exp.id);
  if (TEST) q.set('test', '1');
  history.replaceState(null, '', `${location.pathname}?${q}`);
}

// ---- drawing ------------------------------------------------------------
function canvas2d(cv) {
  const r = window.devicePixelRatio || 1;
  const w = cv.clientWidth || 300, h = cv.clientHeight || 200;
  if (cv.width !== Math.round(w * r)) { cv.width = Math.round(w * r); cv.height = Math.round(h * r); }
  const g = cv.getContext('2d');
  g.setTransform(r, 0, 0, r, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  return { g, w, h };
}
const PAD = { l: 46, r: 8, t: 8, b: 22 };
function fmt(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-2 ? v.toExponential(0) : String(Number(v.toPrecision(3)));
}
// Line chart: series [{points: [[x, y]], colour, label, dots}], opts {logY, xLabel, yMin, yMax}.
function lineChart(cv, series, opts = {}) {
  const { g, w, h } = canvas2d(cv);
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
  if (!pts.length) { g.fillStyle = '#999'; g.fillText(opts.empty || 'no data yet', PAD.l, h / 2); return; }
  const tf = opts.logY ? (y) => Math.log10(y) : (y) => y;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = opts.yMin ?? Math.min(...pts.map((p) => tf(p[1]))), y1 = opts.yMax ?? Math.max(...pts.map((p) => tf(p[1])));
  if (opts.logY) { y0 = Math.floor(y0); y1 = Math.ceil(y1); }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const X = (x) => PAD.l + (x - x0) / (x1 - x0) * (w - PAD.l - PAD.r);
  const Y = (y) => h - PAD.b - (tf(y) - y0) / (y1 - y0) * (h - PAD.t - PAD.b);
  g.strokeStyle = '#ccc'; g.fillStyle = '#555'; g.lineWidth = 1;
  g.beginPath(); g.moveTo(PAD.l, PAD.t); g.lineTo(PAD.l, h - PAD.b); g.lineTo(w - PAD.r, h - PAD.b); g.stroke();
  const ticks = opts.logY ? Math.min(6, y1 - y0) : 4;
  const step = opts.logY ? Math.max(1, Math.ceil((y1 - y0) / 6)) : (y1 - y0) / ticks;
  for (let t = y0; t <= y1 + 1e-9; t += step) {
    const yy = h - PAD.b - (t - y0) / (y1 - y0) * (h - PAD.t - PAD.b);
    g.fillText(opts.logY ? `1e${Math.round(t)}` : fmt(t), 2, yy + 4);
    g.strokeStyle = '#f0f0f0'; g.beginPath(); g.moveTo(PAD.l + 1, yy); g.lineTo(w - PAD.r, yy); g.stroke();
  }
  g.fillStyle = '#555';
  g.fillText(fmt(x0), PAD.l, h - 6);
  const right = fmt(x1); g.fillText(right, w - PAD.r - g.measureText(right).width, h - 6);
  if (opts.xLabel) g.fillText(opts.xLabel, (w - g.measureText(opts.xLabel).width) / 2, h - 6);
  let lx = PAD.l + 8;
  for (const s of series) {
    const ok = s.points.filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
    g.strokeStyle = s.colour; g.fillStyle = s.colour; g.lineWidth = s.width || 1.5;
    if (s.dots) {
      for (const [x, y] of ok) { g.beginPath(); g.arc(X(x), Y(y), 2.5, 0, 7); g.fill(); }
    } else {
      g.beginPath();
      ok.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
      g.stroke();
    }
    if (s.label) { g.fillText(s.label, lx, PAD.t + 10); lx += g.measureText(s.label).width + 12; }
  }
}
// Two bar series per layer on [0, 1].
function fractionChart(cv, dead, saturated) {
  const { g, w, h } = canvas2d(cv);
  const n = dead.length;
  if (!n) { g.fillStyle = '#999'; g.fillText('no data yet', PAD.l, h / 2); return; }
  const bw = (w - PAD.l - PAD.r) / n;
  g.strokeStyle = '#ccc';
  g.beginPath(); g.moveTo(PAD.l, PAD.t); g.lineTo(PAD.l, h - PAD.b); g.lineTo(w - PAD.r, h - PAD.b); g.stroke();
  g.fillStyle = '#555'; g.fillText('1', 30, PAD.t + 8); g.fillText('0', 30, h - PAD.b);
  const H = h - PAD.t - PAD.b;
  for (let i = 0; i < n; i++) {
    g.fillStyle = '#d62728'; g.fillRect(PAD.l + i * bw + 1, h - PAD.b - dead[i] * H, bw / 2 - 1, dead[i] * H);
    g.fillStyle = '#9467bd'; g.fillRect(PAD.l + i * bw + bw / 2, h - PAD.b - saturated[i] * H, bw / 2 - 1, saturated[i] * H);
  }
  g.fillStyle = '#d62728'; g.fillText('dead', PAD.l + 8, PAD.t + 10);
  g.fillStyle = '#9467bd'; g.fillText('saturated', PAD.l + 48, PAD.t + 10);
  g.fillStyle = '#555'; g.fillText('layer 1', PAD.l, h - 6);
  const last = `layer ${n}`; g.fillText(last, w - PAD.r - g.measureText(last).width, h - 6);
}
// Pre-activation histograms: one row per layer (first at the top), one
// column per bin, darker = more of the layer's values.
function histogramChart(cv, layers) {
  const { g, w, h } = canvas2d(cv);
  if (!layers.length) { g.fillStyle = '#999'; g.fillText('no data yet', PAD.l, h / 2); return; }
  const bins = layers[0].length;
  const cw = (w - PAD.l - PAD.r) / bins, rh = (h - PAD.t - PAD.b) / layers.length;
  layers.forEach((hist, l) => {
    const max = Math.max(1, ...hist);
    hist.forEach((c, b) => {
      const v = Math.sqrt(c / max);
      g.fillStyle = `rgba(31, 111, 235, ${v})`;
      g.fillRect(PAD.l + b * cw, PAD.t + l * rh, Math.ceil(cw), Math.ceil(rh));
    });
  });
  g.fillStyle = '#555';
  g.fillText('layer 1', 2, PAD.t + 9); g.fillText(`layer ${layers.length}`, 2, h - PAD.b);
  g.fillText('under', PAD.l, h - 6);
  const o = 'over'; g.fillText(o, w - PAD.r - g.measureText(o).width, h - 6);
  g.fillText('pre-activation →', (w - 80) / 2, h - 6);
}
function surfaceChart(cv, run) {
  const { g, w, h } = canvas2d(cv);
  const size = Math.min(w, h);
  if (run.surface) {
    const { res, cells } = run.surface;
    const img = g.createImageData(res, res);
    for (let i = 0; i < res * res; i++) {
      const c = CLASS_COLOURS[cells[2 * i] | 0] || '#777';
      const p = cells[2 * i + 1];
      const a = Math.max(0, Math.min(1, (p - 0.3) / 0.7));
      img.data[4 * i] = parseInt(c.slice(1, 3), 16);
      img.data[4 * i + 1] = parseInt(c.slice(3, 5), 16);
      img.data[4 * i + 2] = parseInt(c.slice(5, 7), 16);
      img.data[4 * i + 3] = Math.round(40 + 120 * a);
    }
    const off = document.createElement('canvas');
    off.width = res; off.height = res;
    off.getContext('2d').putImageData(img, 0, 0);
    g.imageSmoothingEnabled = true;
    g.drawImage(off, 0, 0, size, size);
  } else {
    g.fillStyle = '#999'; g.fillText('the surface appears once training starts', 8, h / 2);
  }
  const P = (v) => (v + EXTENT) / (2 * EXTENT) * size;
  for (let i = 0; i + 2 < run.points.length; i += 3) {
    g.fillStyle = CLASS_COLOURS[run.points[i + 2] | 0];
    g.strokeStyle = '#fff';
    g.beginPath(); g.arc(P(run.points[i]), size - P(run.points[i + 1]), 2.2, 0, 7); g.fill(); g.stroke();
  }
}

// ---- runs -----------------------------------------------------------------
function makeCard(label) {
  const el = document.createElement('article');
  el.className = 'run';
  el.innerHTML = `<h2>${label} <span></span></h2><div class="stats"></div>
  <div class="downloads">Download: <button data-d="model">model (.safetensors)</button>
    <button data-d="report">report (.json)</button><button data-d="charts">charts (.png)</button></div>
  <div class="views">
    <div class="view"><div class="title">loss: batch (line, logged steps), train/validation at epoch ends (dots)</div><canvas data-v="loss"></canvas></div>
    <div class="view"><div class="title">accuracy: batch (line), train/validation at epoch ends (dots)</div><canvas data-v="acc"></canvas></div>
    <div class="view"><div class="title">gradient norm ‖dL/dW‖ per layer (log scale): first logged step (grey), latest (blue)</div><canvas data-v="grad"></canvas></div>
    <div class="view surface-view"><div class="title">decision surface (evaluated on the GPU) and training points</div><canvas data-v="surface"></canvas></div>
    <div class="view"><div class="title">dead (ReLU family) and saturated units per hidden layer</div><canvas data-v="frac"></canvas></div>
    <div class="view"><div class="title">pre-activation histograms per layer</div><canvas data-v="hist"></canvas></div>
  </div>`;
  $('runs').appendChild(el);
  const cv = {};
  el.querySelectorAll('canvas').forEach((c) => { cv[c.dataset.v] = c; });
  return { el, cv };
}
async function newRun(label, config) {
  const csv = config.dataset === 'csv' && uploaded;
  const full = { ...config, points: 1000, log_every: LOG_EVERY, label_column: csv ? uploaded.label : null };
  const session = await Session.create(JSON.stringify(full), csv ? uploaded.text : undefined);
  const { el, cv } = makeCard(label);
  const run = { label, config: full, session, el, cv, logs: [], epochs: [], first: null, surface: null,
    points: session.points(), planar: session.isPlanar(), seconds: 0, stepsTimed: 0, divergence: null,
    callMs: [], perEpoch: session.stepsPerEpoch() };
  run.stepOfEpoch = (e) => (e + 1) * run.perEpoch;
  el.querySelectorAll('.downloads button').forEach((b) => {
    b.onclick = () => downloadOf(run, b.dataset.d).catch((e) => say(`Download failed: ${describeError(e)}`, true));
  });
  if (!run.planar) el.querySelector('.surface-view').hidden = true;
  draw(run);
  return run;
}
function draw(run) {
  const last = run.logs[run.logs.length - 1];
  const hidden = last ? last.layers.slice(0, -1) : [];
  el_text(run.el.querySelector('h2 span'),
    `${run.config.depth}×${run.config.width} ${run.config.activation}, ${run.config.optimizer} lr ${run.config.lr}, ${run.config.dataset}`);
  const lastEpoch = run.epochs[run.epochs.length - 1];
  const ms = run.stepsTimed ? (1000 * run.seconds / run.stepsTimed).toFixed(1) : '–';
  el_text(run.el.querySelector('.stats'),
    `step ${run.session.steps()} · ${ms} ms/step` +
    (last ? ` · batch loss ${last.loss.toFixed(4)}` : '') +
    (lastEpoch ? ` · epoch ${lastEpoch[0] + 1}: val acc ${lastEpoch[4].toFixed(3)}` : '') +
    (hidden.length > 1 ? ` · ‖g₁‖/‖g_L‖ ${(hidden[0].weight_grad_norm / hidden[hidden.length - 1].weight_grad_norm).toExponential(2)}` : '') +
    (run.divergence ? ` · ${run.divergence}` : ''));
  lineChart(run.cv.loss, [
    { points: run.logs.map((s) => [s.step, s.loss]), colour: '#1f6feb', label: 'batch' },
    { points: run.epochs.map((e) => [run.stepOfEpoch(e[0]), e[1]]), colour: '#2ca02c', dots: true, label: 'train' },
    { points: run.epochs.map((e) => [run.stepOfEpoch(e[0]), e[3]]), colour: '#d62728', dots: true, label: 'validation' },
  ], { xLabel: 'step' });
  lineChart(run.cv.acc, [
    { points: run.logs.map((s) => [s.step, s.accuracy]), colour: '#1f6feb', label: 'batch' },
    { points: run.epochs.map((e) => [run.stepOfEpoch(e[0]), e[2]]), colour: '#2ca02c', dots: true, label: 'train' },
    { points: run.epochs.map((e) => [run.stepOfEpoch(e[0]), e[4]]), colour: '#d62728', dots: true, label: 'validation' },
  ], { xLabel: 'step', yMin: 0, yMax: 1 });
  const norms = (s) => (s ? s.layers.map((l, i) => [i + 1, l.weight_grad_norm]) : []);
  lineChart(run.cv.grad, [
    { points: norms(run.first), colour: '#aaa', label: run.first ? `step ${run.first.step}` : '' },
    { points: norms(last), colour: '#1f6feb', label: last ? `step ${last.step}` : '' },
  ], { logY: true, xLabel: 'layer (last = output)' });
  fractionChart(run.cv.frac, hidden.map((l) => l.dead_fraction), hidden.map((l) => l.saturated_fraction));
  histogramChart(run.cv.hist, hidden.map((l) => l.histogram));
  if (run.planar) surfaceChart(run.cv.surface, run);
}
function el_text(el, t) { el.textContent = t; }

async function trainRun(run, steps) {
  if (run.divergence) return;
  const p = JSON.parse(await run.session.train(steps));
  run.seconds += p.seconds;
  run.stepsTimed += steps;
  run.callMs.push(1000 * p.seconds / steps);
  for (const s of p.logs) { if (!run.first) run.first = s; run.logs.push(s); }
  run.epochs.push(...p.epochs);
  if (p.divergence) {
    run.divergence = p.divergence;
    // In an experiment a divergence can be the finding; it says so there.
    if (!experiment) {
      say(`${run.label} diverged: ${p.divergence}. Lower the learning rate, clip the gradients or add a norm, then Reset.`, true);
    }
  }
  if (run.planar && !run.divergence) {
    const now = performance.now();
    if (!run.surfaceAt || now - run.surfaceAt > 400) {
      run.surfaceAt = now;
      const res = 48;
      run.surface = { res, cells: await run.session.surface(res, EXTENT) };
    }
  }
  draw(run);
}
async function stepAll(steps) {
  if (busy) return;
  busy = true;
  try {
    for (const run of runs) await trainRun(run, steps);
  } catch (e) {
    await failed(e);
  } finally {
    busy = false;
  }
}
async function loop() {
  while (running) {
    await stepAll(LOG_EVERY);
    await new Promise((r) => requestAnimationFrame(() => r()));
    if (runs.length && runs.every((r) => r.divergence)) running = false;
  }
}
// Builds the page's runs: one from the form, or an experiment's.
async function reset(expId = null) {
  running = false;
  while (busy) await new Promise((r) => setTimeout(r, 20));
  for (const r of runs) r.session.free();
  runs = [];
  $('runs').innerHTML = '';
  $('restart').hidden = true;
  $('finding').hidden = true;
  experiment = expId ? experimentById(expId) : null;
  if (experiment) writeForm({ ...readForm().config, ...experiment.base });
  const { config, problems } = readForm();
  const notes = [...urlProblems, ...problems];
  urlProblems = [];
  say(notes.join(' '), notes.length > 0);
  saveUrl(config, experiment);
  try {
    if (experiment) {
      for (const { label, ...differs } of experiment.runs) {
        runs.push(await newRun(label, { ...config, ...experiment.base, ...differs }));
      }
    } else {
      runs.push(await newRun(config.activation, config));
    }
  } catch (e) {
    await failed(e);
  }
}

// Runs an experiment to its end and shows its finding; returns it (null
// when it stopped early: paused, reset, or an error).
async function runExperiment(id) {
  await reset(id);
  const exp = experiment;
  if (!exp || !runs.length) return null;
  const el = $('finding');
  el.hidden = false;
  el.className = 'finding';
  el.textContent = `${exp.title}: training ${runs.length} runs for ${exp.steps} steps each…`;
  running = true;
  const live = () => runs.filter((r) => !r.divergence);
  while (running && experiment === exp && live().some((r) => r.session.steps() < exp.steps)) {
    const done = Math.min(...live().map((r) => r.session.steps()));
    await stepAll(Math.min(LOG_EVERY, exp.steps - done));
    await new Promise((r) => requestAnimationFrame(() => r()));
  }
  if (experiment !== exp) return null;
  if (live().some((r) => r.session.steps() < exp.steps)) {
    el.textContent = `${exp.title}: stopped before the end; press its button to run it again.`;
    return null;
  }
  running = false;
  for (const r of runs) r.steps = r.session.steps();
  let f;
  try {
    f = exp.finding(runs);
  } catch (e) {
    f = { holds: false, numbers: {}, text: `The finding could not be measured (${e.message}).` };
  }
  exp.last = f;
  el.className = f.holds ? 'finding holds' : 'finding fails';
  el.textContent = `${exp.title}. ${f.text} ` +
    (f.verdict || (f.holds ? 'The claim holds on this run.' : 'The claim does NOT hold on this run: see the numbers above.'));
  return f;
}

// ---- taking results home ---------------------------------------------------
function saveBlob(name, blob) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
const slug = (s) => s.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase() || 'run';
// Waits for the training loop to be between calls (a run's session is in
// use while it trains).
async function idle() {
  while (busy) await new Promise((r) => setTimeout(r, 20));
}
function reportOf(run) {
  return {
    playground: 'fusedmlp',
    label: run.label,
    adapter: $('adapter').textContent.replace(/^GPU: /, ''),
    settings: run.config,
    experiment: experiment ? { id: experiment.id, title: experiment.title, finding: experiment.last || null } : null,
    steps: run.session.steps(),
    ms_per_step: run.stepsTimed ? 1000 * run.seconds / run.stepsTimed : null,
    divergence: run.divergence,
    epochs: run.epochs.map((e) => ({ epoch: e[0], train_loss: e[1], train_accuracy: e[2], val_loss: e[3], val_accuracy: e[4] })),
    logged_steps: run.logs,
  };
}
// The run's charts in one PNG: the views as on the page, three a row.
function chartsOf(run) {
  const views = [...run.el.querySelectorAll('.view')].filter((v) => !v.hidden);
  const w = Math.max(...views.map((v) => v.querySelector('canvas').width));
  const h = Math.max(...views.map((v) => v.querySelector('canvas').height));
  const title = 28, cols = 3, rows = Math.ceil(views.length / cols);
  const out = document.createElement('canvas');
  out.width = cols * w; out.height = title + rows * (h + title);
  const g = out.getContext('2d');
  g.fillStyle = '#fff'; g.fillRect(0, 0, out.width, out.height);
  g.fillStyle = '#222'; g.font = '16px system-ui, sans-serif';
  g.fillText(`${run.label}: ${run.el.querySelector('.stats').textContent}`, 8, 20);
  g.font = '12px system-ui, sans-serif';
  views.forEach((v, i) => {
    const x = (i % cols) * w, y = title + Math.floor(i / cols) * (h + title);
    g.fillStyle = '#555';
    g.fillText(v.querySelector('.title').textContent, x + 6, y + 18);
    g.drawImage(v.querySelector('canvas'), x, y + title);
  });
  return new Promise((resolve, reject) => out.toBlob((b) => (b ? resolve(b) : reject(new Error('the charts could not be drawn'))), 'image/png'));
}
async function downloadOf(run, what) {
  await idle();
  busy = true;
  try {
    const name = `fusedmlp-${slug(run.label)}`;
    if (what === 'model') {
      saveBlob(`${name}.safetensors`, new Blob([await run.session.modelBytes()], { type: 'application/octet-stream' }));
    } else if (what === 'report') {
      saveBlob(`${name}.json`, new Blob([JSON.stringify(reportOf(run), null, 1)], { type: 'application/json' }));
    } else {
      saveBlob(`${name}.png`, await chartsOf(run));
    }
  } finally {
    busy = false;
  }
}

// ---- your own data ----------------------------------------------------------
const MAX_CSV_BYTES = 64 << 20;
// Reads a chosen or dropped file; its columns fill the label choice (the
// last by default) and a run is built on it.
async function useFile(file) {
  if (!file) return;
  if (file.size > MAX_CSV_BYTES) {
    say(`${file.name} is ${(file.size / 1048576).toFixed(0)} MB; the page takes CSV files up to 64 MB.`, true);
    return;
  }
  const text = await file.text();
  const head = (text.split(/\r?\n/).find((l) => l.trim()) || '').replace(/^\uFEFF/, '').split(',').map((c) => c.trim());
  const isHeader = head.some((c) => c !== '' && !Number.isFinite(Number(c)));
  const names = head.map((c, i) => (isHeader && c ? c : `column ${i + 1}`));
  uploaded = { name: file.name, text, label: Math.max(0, names.length - 1) };
  const sel = $('csvlabel');
  sel.innerHTML = names.map((n, i) => `<option value="${i}">${n.replace(/[<>&"]/g, '')}</option>`).join('');
  sel.value = String(uploaded.label);
  sel.disabled = false;
  const option = $('dataset').querySelector('option[value="csv"]');
  option.textContent = `your file: ${file.name}`;
  option.disabled = false;
  $('dataset').value = 'csv';
  await reset(null);
}

async function runSelfTest() {
  $('selftest-panel').hidden = false;
  const body = $('selftest-rows');
  body.innerHTML = '<tr><td colspan="7">running…</td></tr>';
  const rows = JSON.parse(await selfTest());
  const f = (v) => (v >= 1e29 ? 'mismatch' : v.toExponential(2));
  body.innerHTML = rows.map((r) => `<tr><td>${r.activation}</td><td>${f(r.forward)}</td><td>${f(r.backward)}</td>
    <td>${f(r.linear_forward)}</td><td>${f(r.linear_backward)}</td><td>${r.special_values ? 'ok' : 'wrong'}</td>
    <td class="${r.passes ? 'pass' : 'fail'}">${r.passes ? 'pass' : 'FAIL'}</td></tr>`).join('');
  return rows;
}

// ---- the browser test ------------------------------------------------------
// With ?test=1 the page runs the checks the repository's web test needs and
// posts the results to /report on the server that served it.
async function runTest() {
  const result = { ok: false, experiments: {} };
  const vanishing = experimentById('vanishing');
  try {
    console.log('test: adapter');
    result.adapter = JSON.parse(await gpuInfo());
    result.adapter_subgroups = !!(await navigator.gpu.requestAdapter())?.features.has('subgroups');
    result.adapter_line = $('adapter').textContent;
    console.log('test: self-test');
    result.selftest = await runSelfTest();
    result.steps = [];
    for (const activation of ['relu', 'sigmoid']) {
      const settings = { ...FIELDS, ...vanishing.base, activation, points: 1000, log_every: LOG_EVERY };
      result.steps.push({ activation, ...JSON.parse(await checkStep(JSON.stringify(settings))) });
    }
    for (const id of ['vanishing', 'dying-relu']) {
      console.log(`test: experiment ${id}`);
      const f = await runExperiment(id);
      if (!f) throw new Error(`the ${id} experiment stopped early: ${$('message').textContent}`);
      result.experiments[id] = { ...f, shown: $('finding').textContent, ms_per_step: runs.map((r) => 1000 * r.seconds / r.stepsTimed) };
      if (id === 'vanishing') {
        result.preset = runs.map((r) => {
          const first = r.logs[0], last = r.logs[r.logs.length - 1];
          const hidden = first.layers.slice(0, -1);
          return {
            activation: r.config.activation,
            steps: r.session.steps(),
            first_loss: first.loss,
            last_loss: last.loss,
            epochs: r.epochs,
            first_to_last_hidden_grad_ratio: hidden[0].weight_grad_norm / hidden[hidden.length - 1].weight_grad_norm,
            ms_per_step: 1000 * r.seconds / r.stepsTimed,
            call_ms: r.callMs,
            divergence: r.divergence,
          };
        });
        // What a user takes home from the ReLU run: the model (checked
        // natively by the test against these predictions), the report
        // and the charts.
        const relu = runs.find((r) => r.config.activation === 'relu');
        const rows = Array.from({ length: 4 * 64 }, (_, i) => (i * 7 + (i >> 6) * 3) % 17);
        const bytes = await relu.session.modelBytes();
        let binary = '';
        for (let i = 0; i < bytes.length; i += 8192) binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
        result.download = {
          model_base64: btoa(binary),
          rows,
          probabilities: Array.from(await relu.session.predictProba(new Float32Array(rows))),
          report: reportOf(relu),
          charts_png_bytes: (await chartsOf(relu)).size,
        };
        result.download.report.logged_steps = result.download.report.logged_steps.length;
      }
    }
    console.log('test: device loss');
    // The device is destroyed under the runs: the next step must say so
    // and offer Restart, which must build runs that train again.
    await loseDevice();
    await stepAll(1);
    const lost = { message: $('message').textContent, restart_offered: !$('restart').hidden };
    if (lost.restart_offered) {
      await reset(experiment ? experiment.id : null);
      await stepAll(1);
      lost.steps_after_restart = runs.map((r) => r.session.steps());
      lost.message_after_restart = $('message').hidden ? '' : $('message').textContent;
    }
    result.device_loss = lost;
    result.ok = true;
  } catch (e) {
    result.error = describeError(e);
  }
  await new Promise((r) => setTimeout(r, 100));
  window.fusedmlpTestResult = result;
  console.log(`test: reporting (ok ${result.ok})`);
  try {
    await fetch('/report', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(result) });
  } catch (_) { /* the page was opened without the test server */ }
}

// ---- start ---------------------------------------------------------------------
// The adapter as the browser names it (vendor, architecture, description),
// marked as software where it is the fallback adapter (SwiftShader).
async function adapterLine() {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return null;
  const info = adapter.info || (adapter.requestAdapterInfo ? await adapter.requestAdapterInfo() : {});
  const parts = [info.vendor, info.architecture, info.description].filter((p) => p && String(p).trim());
  const name = parts.join(' · ') || 'an adapter that gives no name';
  const software = adapter.isFallbackAdapter || info.isFallbackAdapter || /swiftshader/i.test(parts.join(' '));
  return software ? `software (SwiftShader): ${name}` : name;
}
function reportFailure(text) {
  if (!TEST) return;
  window.fusedmlpTestResult = { ok: false, error: text };
  fetch('/report', { method: 'POST', body: JSON.stringify(window.fusedmlpTestResult) }).catch(() => {});
}
async function main() {
  $('activation').innerHTML = ACTIVATIONS.map((a) => `<option value="${a}">${a}</option>`).join('');
  await init();
  $('experiments').innerHTML = EXPERIMENTS.map((e) => `<button data-experiment="${e.id}">${e.title}</button>`).join('');
  const { config, problems, experiment: fromUrl } = configFromUrl();
  writeForm(config);
  urlProblems = problems;
  if (!navigator.gpu) {
    const text = 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or Safari, ' +
      'or enable WebGPU in the browser settings (chrome://flags/#enable-unsafe-webgpu on Linux).';
    $('adapter').textContent = 'no WebGPU';
    say(text, true);
    reportFailure(text);
    return;
  }
  try {
    await gpuInfo();
    $('adapter').textContent = `GPU: ${(await adapterLine()) || 'unnamed adapter'}`;
  } catch (e) {
    $('adapter').textContent = 'no usable GPU adapter';
    say(describeError(e), true);
    reportFailure(describeError(e));
    return;
  }
  for (const el of document.querySelectorAll('.controls input, .controls select')) {
    if (!(el.id in FIELDS)) continue;
    el.addEventListener('change', () => {
      const { config, problems } = readForm();
      if (problems.length) say(problems.join(' '), true);
      saveUrl(config, null);
    });
  }
  $('start').onclick = async () => { if (!runs.length) await reset(null); if (!running) { running = true; loop(); } };
  $('pause').onclick = () => { running = false; };
  $('step').onclick = async () => { if (!runs.length) await reset(null); running = false; await stepAll(1); };
  $('reset').onclick = () => reset(null);
  $('restart').onclick = () => reset(experiment ? experiment.id : null);
  $('selftest').onclick = () => runSelfTest().catch((e) => say(describeError(e), true));
  for (const b of document.querySelectorAll('[data-experiment]')) {
    b.onclick = () => runExperiment(b.dataset.experiment).catch((e) => say(describeError(e), true));
  }
  $('csvfile').addEventListener('change', (e) => useFile(e.target.files[0]).catch((err) => say(describeError(err), true)));
  $('csvlabel').addEventListener('change', () => {
    if (!uploaded) return;
    uploaded.label = Number($('csvlabel').value);
    reset(null);
  });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    useFile(e.dataTransfer && e.dataTransfer.files[0]).catch((err) => say(describeError(err), true));
  });
  if (TEST) { await runTest(); return; }
  if (fromUrl) await runExperiment(fromUrl);
  else await reset(null);
}
main();
