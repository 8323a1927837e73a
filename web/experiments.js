// The essay's claims as experiments: each sets up two to four runs on the
// same data and seed, trains them side by side, and measures its finding
// from the live runs' diagnostics (never from stored numbers). A finding
// that does not hold on this run is said to, plainly.
//
// A run is what app.js keeps: {label, config, logs (StepLog objects:
// step, loss, layers[] with weight_grad_norm, activation_mean,
// activation_std, dead_fraction, ...), epochs, divergence, callMs[]}.

const sci = (v) => (Number.isFinite(v) ? (v === 0 ? '0' : v.toExponential(1)) : String(v));
const fix = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : String(v));
const pct = (v) => `${Math.round(100 * v)}%`;
const hidden = (log) => (log ? log.layers.slice(0, -1) : []);
const first = (run) => run.logs[0];
const last = (run) => run.logs[run.logs.length - 1];
// Layer 1's weight-gradient norm over the last hidden layer's.
function gradRatio(log) {
  const h = hidden(log);
  return h.length > 1 ? h[0].weight_grad_norm / h[h.length - 1].weight_grad_norm : NaN;
}
// Mean over hidden layers of a diagnostic.
function meanOf(log, key) {
  const h = hidden(log);
  return h.length ? h.reduce((s, l) => s + l[key], 0) / h.length : NaN;
}
// The batch loss over the last three logged steps (one batch is noisy).
function recentLoss(run) {
  const tail = run.logs.slice(-3).map((s) => s.loss);
  return tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN;
}
function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : NaN;
}
const byLabel = (runs) => Object.fromEntries(runs.map((r) => [r.label, r]));

// Each: id (the URL's experiment=), title, base settings, runs (label and
// what differs), steps to train, and finding(runs) -> {text, holds, numbers,
// verdict} (verdict: a sentence in place of the usual "holds" one, where a
// claim holds only in part).
export const EXPERIMENTS = [
  {
    id: 'vanishing',
    title: 'Vanishing gradients: ReLU, sigmoid and tanh, 20 layers',
    base: { dataset: 'digits', depth: 20, width: 64, init: 'default', optimizer: 'sgd', lr: 0.05, batch: 32,
      norm: 'none', residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'relu', activation: 'relu' },
      { label: 'sigmoid', activation: 'sigmoid' },
      { label: 'tanh', activation: 'tanh' },
    ],
    steps: 90,
    finding(runs) {
      const r = byLabel(runs);
      const ratio = (k) => gradRatio(first(r[k]));
      const numbers = { relu: ratio('relu'), sigmoid: ratio('sigmoid'), tanh: ratio('tanh'),
        loss: { relu: recentLoss(r.relu), sigmoid: recentLoss(r.sigmoid), tanh: recentLoss(r.tanh) } };
      const holds = numbers.sigmoid < 1e-3 * numbers.relu && numbers.relu > 1e-2;
      const text = `At initialisation the first hidden layer's gradient is ${sci(numbers.sigmoid)} of the last ` +
        `hidden layer's with sigmoid, ${sci(numbers.tanh)} with tanh and ${sci(numbers.relu)} with ReLU; ` +
        `after ${runs[0].steps} steps the batch loss is ${fix(numbers.loss.relu)} (ReLU), ` +
        `${fix(numbers.loss.sigmoid)} (sigmoid) and ${fix(numbers.loss.tanh)} (tanh).`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'dying-relu',
    title: 'Dying ReLU at a high learning rate, and leaky ReLU and ELU',
    base: { dataset: 'spirals', depth: 10, width: 32, init: 'default', optimizer: 'adam', lr: 0.1, batch: 32,
      norm: 'none', residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'relu', activation: 'relu' },
      { label: 'leaky_relu', activation: 'leaky_relu' },
      { label: 'elu', activation: 'elu' },
    ],
    steps: 60,
    finding(runs) {
      const r = byLabel(runs);
      const dead = (k, at) => meanOf(at(r[k]), 'dead_fraction');
      // The gradient reaching layer 1: a unit whose slope is 0 (dead at 0,
      // or saturated) passes none back, whatever its output.
      const g1 = (k, at) => hidden(at(r[k]))[0].weight_grad_norm;
      const grad = (k) => [g1(k, first), g1(k, last)];
      const kept = (k) => g1(k, last) > 1e-3 * g1(k, first);
      const numbers = {
        relu_start: dead('relu', first), relu_end: dead('relu', last),
        leaky_end: dead('leaky_relu', last), elu_end: dead('elu', last),
        grad: { relu: grad('relu'), leaky_relu: grad('leaky_relu'), elu: grad('elu') },
        elu_kept: kept('elu'),
      };
      const holds = numbers.relu_end > numbers.relu_start + 0.15 && numbers.leaky_end < 0.05 && kept('leaky_relu');
      const step = last(r.relu).step;
      const elu = numbers.elu_kept
        ? `ELU kept it too (${sci(numbers.grad.elu[0])} → ${sci(numbers.grad.elu[1])}).`
        : `ELU did not: its output is never exactly 0 (dead ${pct(numbers.elu_end)}), yet its layer-1 gradient fell ` +
          `from ${sci(numbers.grad.elu[0])} to ${sci(numbers.grad.elu[1])}, its units saturated near −1, where its ` +
          'slope is 0 too.';
      const text = `At Adam's learning rate 0.1, ReLU's dead units (output 0 for the whole batch, mean over the ` +
        `hidden layers) went from ${pct(numbers.relu_start)} at initialisation to ${pct(numbers.relu_end)} by step ${step}, ` +
        `and the gradient reaching layer 1 from ${sci(numbers.grad.relu[0])} to ${sci(numbers.grad.relu[1])}. ` +
        `Leaky ReLU kept ${pct(1 - numbers.leaky_end)} of its units and its gradient (${sci(numbers.grad.leaky_relu[0])} → ` +
        `${sci(numbers.grad.leaky_relu[1])}). ${elu}`;
      const verdict = holds && !numbers.elu_kept
        ? 'The claim holds for leaky ReLU on this run, and does NOT hold for ELU at this learning rate.'
        : null;
      return { holds, numbers, text, verdict };
    },
  },
  {
    id: 'initialisation',
    title: 'Initialisation: ReLU with He, Xavier without the gain, and too small a scale',
    base: { dataset: 'spirals', depth: 20, width: 32, activation: 'relu', optimizer: 'adam', lr: 0.003, batch: 32,
      norm: 'none', residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'He', init: 'he_normal' },
      { label: 'Xavier, gain 1', init: 'lecun_normal' },
      { label: 'N(0, 0.01²)', init: 'normal:0.01' },
    ],
    steps: 10,
    finding(runs) {
      const r = byLabel(runs);
      const stds = (k) => hidden(first(r[k])).map((l) => l.activation_std);
      const ends = (k) => { const s = stds(k); return [s[0], s[s.length - 1]]; };
      const [he0, he1] = ends('He');
      const [xa0, xa1] = ends('Xavier, gain 1');
      const [sm0, sm1] = ends('N(0, 0.01²)');
      const numbers = { he: [he0, he1], xavier: [xa0, xa1], small: [sm0, sm1] };
      const keeps = (a, b) => b / a > 0.1 && b / a < 10;
      const holds = keeps(he0, he1) && xa1 / xa0 < 0.1 && sm1 / sm0 < 1e-6;
      const text = `Activation std from hidden layer 1 to layer 20 at initialisation: He ${fix(he0)} → ${fix(he1)} ` +
        `(kept), Xavier without ReLU's gain of 2 (lecun_normal, the same on square layers) ${fix(xa0)} → ${sci(xa1)} ` +
        `(halved in variance every layer), N(0, 0.01²) ${sci(sm0)} → ${sci(sm1)} (gone).`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'normalisation',
    title: 'Normalisation: 20 sigmoid layers with and without BatchNorm and LayerNorm',
    base: { dataset: 'spirals', depth: 20, width: 32, activation: 'sigmoid', init: 'default', optimizer: 'adam',
      lr: 0.003, batch: 32, residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'no norm', norm: 'none' },
      { label: 'BatchNorm', norm: 'batch' },
      { label: 'LayerNorm', norm: 'layer' },
    ],
    steps: 90,
    finding(runs) {
      const r = byLabel(runs);
      const numbers = {
        none: gradRatio(first(r['no norm'])), batch: gradRatio(first(r.BatchNorm)), layer: gradRatio(first(r.LayerNorm)),
        loss: { none: recentLoss(r['no norm']), batch: recentLoss(r.BatchNorm), layer: recentLoss(r.LayerNorm) },
      };
      const holds = numbers.batch > 1e3 * numbers.none;
      const text = `The first hidden layer's gradient over the last's at initialisation: ${sci(numbers.none)} ` +
        `without a norm, ${sci(numbers.batch)} with BatchNorm, ${sci(numbers.layer)} with LayerNorm; batch loss after ` +
        `${runs[0].steps} steps ${fix(numbers.loss.none)}, ${fix(numbers.loss.batch)} and ${fix(numbers.loss.layer)} ` +
        `(chance is ln 2 = 0.69).`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'residual',
    title: 'Depth: 50 ReLU layers with and without residual connections',
    base: { dataset: 'spirals', depth: 50, width: 32, activation: 'relu', init: 'default', optimizer: 'sgd',
      lr: 0.01, batch: 32, norm: 'none', dropout: 0, clip: 0 },
    runs: [
      { label: 'plain', residual: false },
      { label: 'residual', residual: true },
    ],
    steps: 200,
    finding(runs) {
      const r = byLabel(runs);
      // The last epoch's validation accuracy (a batch's loss is noisy).
      const val = (run) => (run.epochs.length ? run.epochs[run.epochs.length - 1][4] : NaN);
      const numbers = { plain: val(r.plain), residual: val(r.residual),
        loss: { plain: recentLoss(r.plain), residual: recentLoss(r.residual) } };
      const holds = numbers.residual > numbers.plain + 0.05;
      const text = `After ${runs[0].steps} steps of SGD the plain 50-layer net's validation accuracy is ` +
        `${fix(numbers.plain)} and the residual net's ${fix(numbers.residual)} (chance is 0.5); batch loss ` +
        `${fix(numbers.loss.plain)} and ${fix(numbers.loss.residual)}.`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'selu',
    title: 'SELU with LeCun initialisation keeps activations at mean 0, std 1',
    base: { dataset: 'spirals', depth: 20, width: 32, optimizer: 'adam', lr: 0.003, batch: 32, norm: 'none',
      residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'SELU + LeCun', activation: 'selu', init: 'lecun_normal' },
      { label: 'SELU + He', activation: 'selu', init: 'he_normal' },
      { label: 'ReLU + He', activation: 'relu', init: 'he_normal' },
    ],
    steps: 10,
    finding(runs) {
      const r = byLabel(runs);
      const at20 = (k) => { const h = hidden(first(r[k])); return h[h.length - 1]; };
      const s = at20('SELU + LeCun'), h = at20('SELU + He'), q = at20('ReLU + He');
      const numbers = { selu_lecun: [s.activation_mean, s.activation_std], selu_he: [h.activation_mean, h.activation_std],
        relu_he: [q.activation_mean, q.activation_std] };
      const normal = ([m, sd]) => Math.abs(m) < 0.2 && Math.abs(sd - 1) < 0.3;
      const holds = normal(numbers.selu_lecun) && !normal(numbers.selu_he);
      const text = `At layer 20 at initialisation: SELU + LeCun mean ${fix(s.activation_mean)}, std ` +
        `${fix(s.activation_std)}; SELU + He mean ${fix(h.activation_mean)}, std ${fix(h.activation_std)}; ` +
        `ReLU + He mean ${fix(q.activation_mean)}, std ${fix(q.activation_std)}.`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'clipping',
    title: 'Gradient clipping taming a high learning rate',
    base: { dataset: 'spirals', depth: 10, width: 32, activation: 'relu', init: 'default', optimizer: 'sgd',
      lr: 0.5, batch: 32, norm: 'none', residual: false, dropout: 0 },
    runs: [
      { label: 'no clipping', clip: 0 },
      { label: 'clipped to norm 1', clip: 1 },
    ],
    steps: 90,
    finding(runs) {
      const r = byLabel(runs);
      const plain = r['no clipping'], clipped = r['clipped to norm 1'];
      const numbers = { plain_diverged: !!plain.divergence, clipped_diverged: !!clipped.divergence,
        plain_loss: recentLoss(plain), clipped_loss: recentLoss(clipped) };
      const holds = !numbers.clipped_diverged &&
        (numbers.plain_diverged || numbers.plain_loss > numbers.clipped_loss + 0.1);
      const plainText = plain.divergence ? `diverged (${plain.divergence})` : `reached batch loss ${fix(numbers.plain_loss)}`;
      const clippedText = clipped.divergence ? `diverged too (${clipped.divergence})` : `reached batch loss ${fix(numbers.clipped_loss)}`;
      const text = `At SGD's learning rate 0.5, the unclipped run ${plainText}; clipped to a global gradient norm ` +
        `of 1 it ${clippedText}.`;
      return { holds, numbers, text };
    },
  },
  {
    id: 'cost',
    title: 'Cost: time per training step, ReLU against exp-based activations',
    base: { dataset: 'digits', depth: 20, width: 64, init: 'default', optimizer: 'sgd', lr: 0.05, batch: 32,
      norm: 'none', residual: false, dropout: 0, clip: 0 },
    runs: [
      { label: 'relu', activation: 'relu' },
      { label: 'sigmoid', activation: 'sigmoid' },
      { label: 'gelu', activation: 'gelu' },
      { label: 'mish', activation: 'mish' },
    ],
    steps: 60,
    finding(runs) {
      // Each call's ms per step, the first (pipeline builds) left out;
      // the runs take turns, so a busy moment touches all of them.
      const ms = Object.fromEntries(runs.map((r) => [r.label, median(r.callMs.slice(1))]));
      const base = ms.relu;
      const others = runs.filter((r) => r.label !== 'relu').map((r) => `${r.label} ${fix(ms[r.label], 1)} ms ` +
        `(${fix(ms[r.label] / base)}×)`);
      const slowest = Math.max(...runs.filter((r) => r.label !== 'relu').map((r) => ms[r.label] / base));
      const holds = slowest >= 1.05;
      const text = `A training step (forward, backward and update of 20 × 64, batch 32) takes ${fix(base, 1)} ms with ` +
        `ReLU on this GPU; ${others.join(', ')}. ` + (holds
        ? 'The exp-based activations cost measurably more here.'
        : 'Here the activation is not where a step\'s time goes: the matrix products and the launches are.');
      return { holds, numbers: ms, text };
    },
  },
];

export function experimentById(id) {
  return EXPERIMENTS.find((e) => e.id === id) || null;
}
