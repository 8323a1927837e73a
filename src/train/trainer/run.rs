//! The loop: epochs, evaluation, the report, and timed steps for benchmarks.

use super::*;
use crate::train::observer::{Callbacks, Control, Observer};
use crate::train::report::Outcome;

/// The most host time [`Trainer::train_async`] runs without handing its
/// thread back to the executor.
pub(crate) const YIELD_EVERY: std::time::Duration = std::time::Duration::from_millis(4);

/// A future that is pending once, waking itself: awaiting it lets the
/// executor run its other tasks before this one goes on.
fn yield_now() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

impl Trainer {
    /// Records the evaluation-mode forward and loss over `rows` rows of a
    /// resident split, in batch-sized chunks, into `totals` (cleared first).
    /// Where the trainer has a fused stack, its forward runs the hidden
    /// layers of each chunk in one dispatch (a ragged last chunk's rows
    /// past the split are computed and not read).
    fn record_evaluation(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        split: (&GpuTensor, &GpuTensor),
        rows: usize,
        totals: &GpuTensor,
    ) -> Result<(), Error> {
        self.gpu
            .scoped("clearing totals", || totals.record_clear(encoder))?;
        let chunk = self.config.batch_size;
        let mut start = 0;
        while start < rows {
            let n = chunk.min(rows - start);
            // As in a step: where the fused forward gathers, nothing else does.
            let gathers = self.fused.as_ref().is_some_and(|f| f.bufs.gathers());
            if !gathers {
                self.record_gather(encoder, split, &self.identity_perm, Some(start), n)?;
            }
            match &self.fused {
                Some(f) => {
                    if gathers {
                        self.record_fused_evaluation(encoder, f, split, start)?;
                    } else {
                        self.record_fused_forward(encoder, f, false)?;
                    }
                    self.record_forward_from(encoder, f.shape.layers, n, false, false)?;
                }
                None => self.record_forward(encoder, n, false, false)?,
            }
            self.record_loss(encoder, n, totals)?;
            start += n;
        }
        Ok(())
    }

    /// The epoch's end: the running totals of its batches, the validation
    /// split and the whole training split evaluated (evaluation mode), as
    /// (loss sum, correct, rows) each; one submission, three small readbacks.
    pub(super) async fn evaluate_and_read_totals(
        &mut self,
    ) -> Result<([f32; 3], [f32; 3], [f32; 3]), Error> {
        let gpu = self.gpu.clone();
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        self.record_evaluation(
            &mut encoder,
            (&self.val_x, &self.val_y),
            self.val_rows,
            &self.val_totals,
        )?;
        self.record_evaluation(
            &mut encoder,
            (&self.train_x, &self.train_y),
            self.train_rows,
            &self.train_eval_totals,
        )?;
        gpu.submit("evaluation", vec![encoder.finish()])?;
        let t = gpu.download_async(&self.train_totals).await?;
        let v = gpu.download_async(&self.val_totals).await?;
        let e = gpu.download_async(&self.train_eval_totals).await?;
        self.readbacks += 3;
        let three = |x: Vec<f32>| [x[0], x[1], x[2]];
        Ok((three(t), three(v), three(e)))
    }

    /// Hands the logged steps read back since the last call to
    /// `observer`, in step order; whether it asked to stop.
    fn deliver_logs(&self, observer: &mut impl Observer, delivered: &mut Option<u64>) -> bool {
        let mut stop = false;
        for log in &self.logs {
            if delivered.is_none_or(|d| log.step > d) {
                stop |= observer.on_logged_step(log) == Control::Stop;
                *delivered = Some(log.step);
            }
        }
        stop
    }

    /// Trains for the configured epochs. `on_step` is called after every
    /// submitted step with (steps taken, total steps); `on_epoch` after every
    /// epoch. Stops early (with the outcome saying why) if the loss becomes
    /// non-finite.
    pub fn train(
        &mut self,
        label: &str,
        on_step: impl FnMut(u64, u64),
        on_epoch: impl FnMut(&EpochLog),
    ) -> Result<RunReport, Error> {
        pollster::block_on(self.train_async(label, on_step, on_epoch))
    }

    /// [`Trainer::train`] with an [`Observer`] that sees every step, every
    /// logged step's diagnostics and every epoch, and can stop the run
    /// ([`Control::Stop`]: early stopping, a time budget, a target).
    pub fn train_observed(
        &mut self,
        label: &str,
        observer: &mut impl Observer,
    ) -> Result<RunReport, Error> {
        pollster::block_on(self.train_observed_async(label, observer))
    }

    /// [`Trainer::train`] without blocking: every wait for the GPU (logged
    /// steps' diagnostics, the divergence flags, the evaluation at each
    /// epoch's end, checkpoints' readbacks) is awaited, so an async
    /// application (or the browser) keeps running while the GPU works; and
    /// between steps that wait for nothing it hands the thread back to the
    /// executor at least every 4 ms of host work, so other tasks on a
    /// single-thread executor keep running. Checkpoint files, where set,
    /// are written with blocking I/O.
    pub async fn train_async(
        &mut self,
        label: &str,
        on_step: impl FnMut(u64, u64),
        on_epoch: impl FnMut(&EpochLog),
    ) -> Result<RunReport, Error> {
        let mut callbacks = Callbacks { on_step, on_epoch };
        self.train_observed_async(label, &mut callbacks).await
    }

    /// [`Trainer::train_observed`] without blocking (as
    /// [`Trainer::train_async`]).
    pub async fn train_observed_async(
        &mut self,
        label: &str,
        observer: &mut impl Observer,
    ) -> Result<RunReport, Error> {
        let start = Instant::now();
        let steps_per_epoch = self.steps_per_epoch();
        let total = self.total_steps();
        let mut epochs = Vec::new();
        let mut outcome = "completed".to_string();
        let mut status = Outcome::Completed;
        let mut divergence = None;
        let mut last_yield = Instant::now();
        // The last logged step handed to the observer.
        let mut delivered = None;
        'epochs: while self.epoch < self.config.epochs {
            let epoch = self.epoch;
            let order = shuffle_order(self.config.seed, epoch, self.train_rows);
            self.gpu.scoped("writing the epoch order", || {
                self.gpu
                    .queue()
                    .write_buffer(&self.perm, 0, bytemuck::cast_slice(&order))
            })?;
            if self.step_in_epoch == 0 {
                let gpu = self.gpu.clone();
                let mut clear = gpu.device().create_command_encoder(&Default::default());
                gpu.scoped("clearing totals", || {
                    self.train_totals.record_clear(&mut clear)
                })?;
                gpu.submit("clearing totals", vec![clear.finish()])?;
            }
            while self.step_in_epoch < steps_per_epoch {
                let logged = self.step.is_multiple_of(self.config.log_every);
                self.submit_step(epoch, self.step_in_epoch * self.config.batch_size)
                    .await?;
                self.step_in_epoch += 1;
                self.collect_logs(false).await?;
                let mut stop = self.deliver_logs(observer, &mut delivered);
                stop |= observer.on_step(self.step, total) == Control::Stop;
                // An unlogged step waits for nothing, so without this the
                // future would hold its executor's thread for a whole
                // epoch: hand it back every few milliseconds of host work.
                if last_yield.elapsed() >= YIELD_EVERY {
                    yield_now().await;
                    last_yield = Instant::now();
                }
                if logged {
                    // The flags ride on logged steps' readbacks: stop early.
                    if let Some(d) = self.divergence_async().await? {
                        divergence = Some(d);
                        break 'epochs;
                    }
                }
                if self.stop_at == Some(self.step) {
                    status = Outcome::Stopped { step: self.step };
                    outcome = status.to_string();
                    break 'epochs;
                }
                if stop {
                    status = Outcome::StoppedByObserver { step: self.step };
                    outcome = status.to_string();
                    break 'epochs;
                }
                if let Some((path, every)) = self.checkpointing.clone() {
                    if self.step.is_multiple_of(every) {
                        if let Some(d) = self.divergence_async().await? {
                            divergence = Some(d);
                            break 'epochs;
                        }
                        self.save_checkpoint_async(&path).await?;
                    }
                }
            }
            let (t, v, e) = self.evaluate_and_read_totals().await?;
            self.collect_logs(true).await?;
            let mut stop = self.deliver_logs(observer, &mut delivered);
            // No validation rows: the validation figures are absent (NaN,
            // null in JSON), not zero.
            let no_val = self.val_rows == 0;
            let log = EpochLog {
                epoch,
                train_loss: t[0] / t[2].max(1.0),
                train_accuracy: t[1] / t[2].max(1.0),
                train_eval_loss: e[0] / e[2].max(1.0),
                train_eval_accuracy: e[1] / e[2].max(1.0),
                val_loss: if no_val { f32::NAN } else { v[0] / v[2] },
                val_accuracy: if no_val { f32::NAN } else { v[1] / v[2] },
                val_rows: self.val_rows,
                elapsed_seconds: start.elapsed().as_secs_f64(),
            };
            stop |= observer.on_epoch(&log) == Control::Stop;
            epochs.push(log);
            if let Some(d) = self.divergence_async().await? {
                divergence = Some(d);
                break;
            }
            self.epoch += 1;
            self.step_in_epoch = 0;
            if stop && self.epoch < self.config.epochs {
                status = Outcome::StoppedByObserver { step: self.step };
                // Counted as the run's epochs are ("2 of 5"), not by the
                // 0-based index an EpochLog carries.
                outcome = format!(
                    "stopped by the observer after {} of {} epochs",
                    epoch + 1,
                    self.config.epochs
                );
                break;
            }
        }
        self.collect_logs(true).await?;
        if let Some(d) = &divergence {
            outcome = d.to_string();
            status = Outcome::Diverged {
                step: d.step,
                location: d.location(),
            };
            // Diagnostics logged once values were non-finite describe the
            // blow-up, not the net: the report keeps the steps before it.
            self.logs.retain(|l| l.step < d.step);
        } else if let (Some((path, _)), None) = (self.checkpointing.clone(), self.stop_at) {
            self.save_checkpoint_async(&path).await?;
        }
        let wall = start.elapsed().as_secs_f64();
        Ok(RunReport {
            label: label.to_string(),
            config: serde_json::json!({
                "model": self.model.config,
                "init": self.model.config.init().to_string(),
                "train": self.config,
            }),
            adapter: self.gpu.describe(),
            seed: self.config.seed,
            epochs,
            steps: std::mem::take(&mut self.logs),
            logged_steps_rule: format!(
                "diagnostics logged at the first step and every {} steps; the report keeps at \
                 most {} logged steps: past that, every second entry is dropped (older entries \
                 grow sparser), always keeping the first and the last, the one with the largest \
                 global gradient norm and any with a non-finite loss or gradient norm",
                self.config.log_every, self.config.max_logged_steps
            ),
            logged_steps_dropped: self.logs_dropped,
            wall_seconds: wall,
            samples_per_second: (self.step as f64 * self.config.batch_size as f64) / wall.max(1e-9),
            total_steps: self.step,
            readbacks: self.readbacks,
            outcome,
            status,
            divergence,
        })
    }

    /// Trains like [`Trainer::train`], stopping every `every` steps (0:
    /// never) to call `probe` with the trainer (to read the weights back,
    /// say), and returns the parts' reports joined
    /// ([`RunReport::join`]). Stops at a divergence without probing it.
    /// The training itself is the same as one uninterrupted run.
    pub fn train_in_parts(
        &mut self,
        label: &str,
        every: u64,
        mut probe: impl FnMut(&mut Trainer) -> Result<(), Error>,
    ) -> Result<RunReport, Error> {
        let total = self.total_steps();
        let mut parts = Vec::new();
        loop {
            let next = self.steps_taken() + every;
            self.stop_after(if every > 0 && next < total {
                next
            } else {
                u64::MAX
            });
            let part = self.train(label, |_, _| {}, |_| {})?;
            let diverged = part.divergence.is_some();
            parts.push(part);
            if diverged {
                break;
            }
            probe(self)?;
            if self.steps_taken() >= total {
                break;
            }
        }
        self.stop_at = None;
        Ok(RunReport::join(parts, self.config.batch_size))
    }

    /// Takes `steps` optimizer steps now, over the first epoch's order
    /// (wrapping), with no evaluation and no report: a warm-up, a fixed
    /// budget of steps, a check that a configuration trains. Steps due for
    /// logging are logged ([`Trainer::logs`]). Waits for the GPU at the end.
    pub fn run_steps(&mut self, steps: usize) -> Result<(), Error> {
        pollster::block_on(self.run_steps_async(steps))
    }

    /// [`Trainer::run_steps`] without blocking.
    pub async fn run_steps_async(&mut self, steps: usize) -> Result<(), Error> {
        let per_epoch = self.steps_per_epoch().max(1);
        for s in 0..steps {
            self.submit_step(0, (s % per_epoch) * self.config.batch_size)
                .await?;
            self.collect_logs(false).await?;
        }
        self.gpu.wait_async("finishing steps", None).await?;
        self.collect_logs(true).await
    }

    /// Runs `f` on unlogged steps for a benchmark: logging off, the step
    /// counter at 1 (past the logged first step), two warm-up steps
    /// (pipelines compiled, autotune done), logging restored after.
    #[cfg(feature = "cli")]
    fn unlogged_bench<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.bench_logging_every(u64::MAX, f)
    }

    /// [`Trainer::unlogged_bench`] with every `log_every`-th step logged
    /// (1: every step) instead.
    #[cfg(feature = "cli")]
    fn bench_logging_every<T>(
        &mut self,
        log_every: u64,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let saved_log_every = self.config.log_every;
        self.config.log_every = log_every;
        self.step = 1;
        let result = self.run_steps(2).and_then(|()| f(self));
        self.config.log_every = saved_log_every;
        result
    }

    /// Submits benchmark step `s` (the batch at its place in the first
    /// epoch's order), no readback.
    #[cfg(feature = "cli")]
    fn submit_bench_step(&mut self, s: usize) -> Result<(), Error> {
        let per_epoch = self.steps_per_epoch().max(1);
        pollster::block_on(self.submit_step(0, (s % per_epoch) * self.config.batch_size))
    }

    /// Times the host's recording of one step (building the command buffer,
    /// before the submit) and the whole step: returns (median host seconds to
    /// record a step, mean seconds per step) over `steps` non-logged steps.
    /// For benchmarks: it takes real optimizer steps (the model changes) and
    /// leaves the step counter where they end.
    #[cfg(feature = "cli")]
    pub(crate) fn time_steps(&mut self, steps: usize) -> Result<(f64, f64), Error> {
        self.unlogged_bench(|t| {
            let mut host = Vec::new();
            let start = Instant::now();
            for s in 0..steps {
                t.submit_bench_step(s)?;
                host.push(t.last_record_seconds);
            }
            t.gpu.wait("timing steps", None)?;
            let per_step = start.elapsed().as_secs_f64() / steps.max(1) as f64;
            Ok((crate::gpu::timing::median(&host), per_step))
        })
    }

    /// Where a step's time goes: each compute pass submitted and waited on
    /// alone (see [`Gpu::profile_passes`]), `steps` times, on unlogged
    /// steps or (`logged`) on steps that all log, each step's diagnostics
    /// read back before the next; returns (label, median milliseconds) per
    /// pass in recording order and the median wall-clock milliseconds of
    /// the whole step run that way (a logged step's readback included).
    #[cfg(feature = "cli")]
    pub(crate) fn profile_steps(
        &mut self,
        steps: usize,
        logged: bool,
    ) -> Result<(Vec<(String, f64)>, f64), Error> {
        let log_every = if logged { 1 } else { u64::MAX };
        self.bench_logging_every(log_every, |t| {
            t.gpu.wait("profiling steps", None)?;
            let mut per_pass: Vec<(String, Vec<f64>)> = Vec::new();
            let mut whole = Vec::new();
            for s in 0..steps.max(1) {
                let start = Instant::now();
                let gpu = t.gpu.clone();
                let passes = gpu.profile_passes(|| t.submit_bench_step(s))?;
                t.gpu.wait("profiling steps", None)?;
                pollster::block_on(t.collect_logs(true))?;
                whole.push(start.elapsed().as_secs_f64() * 1e3);
                for (i, (label, secs)) in passes.into_iter().enumerate() {
                    if per_pass.len() <= i {
                        per_pass.push((label, Vec::new()));
                    }
                    per_pass[i].1.push(secs * 1e3);
                }
            }
            Ok((
                per_pass
                    .into_iter()
                    .map(|(l, t)| (l, crate::gpu::timing::median(&t)))
                    .collect(),
                crate::gpu::timing::median(&whole),
            ))
        })
    }
}
