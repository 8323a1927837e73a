//! Watching a run as it trains, and stopping it: an [`Observer`] gets every
//! step, every logged step's diagnostics and every epoch's metrics, and
//! answers [`Control::Stop`] to end the run there (early stopping, a time
//! budget, a target accuracy).

use super::report::{EpochLog, StepLog};

/// What an [`Observer`] tells the training loop after each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on training.
    #[default]
    Continue,
    /// End the run after this event: the report's outcome says so, a
    /// checkpoint is written where checkpointing is set, and
    /// [`crate::Trainer::resume`] can go on from it later.
    Stop,
}

/// Receives a run's progress from [`crate::Trainer::train_observed`]. Every
/// method has a default that continues, so an observer implements only what
/// it watches.
///
/// Early stopping on the validation loss, with a patience of two epochs:
///
/// ```no_run
/// use fusedmlp::train::{Control, EpochLog, Observer};
///
/// struct EarlyStop { best: f32, bad_epochs: usize }
///
/// impl Observer for EarlyStop {
///     fn on_epoch(&mut self, e: &EpochLog) -> Control {
///         match e.validation() {
///             Some((loss, _accuracy)) if loss < self.best => { self.best = loss; self.bad_epochs = 0; }
///             _ => self.bad_epochs += 1,
///         }
///         if self.bad_epochs >= 2 { Control::Stop } else { Control::Continue }
///     }
/// }
/// # fn run(trainer: &mut fusedmlp::Trainer) -> Result<(), fusedmlp::Error> {
/// let report = trainer.train_observed("early", &mut EarlyStop { best: f32::INFINITY, bad_epochs: 0 })?;
/// println!("{}: {} epochs trained", report.outcome, report.epochs.len());
/// # Ok(()) }
/// ```
pub trait Observer {
    /// After each step is submitted, with (steps taken, total steps of the
    /// configured epochs).
    fn on_step(&mut self, _step: u64, _total: u64) -> Control {
        Control::Continue
    }

    /// When a logged step's diagnostics have been read back (a few steps
    /// after it ran, in step order; see [`crate::TrainConfig::log_every`]).
    fn on_logged_step(&mut self, _log: &StepLog) -> Control {
        Control::Continue
    }

    /// After each epoch's evaluation.
    fn on_epoch(&mut self, _epoch: &EpochLog) -> Control {
        Control::Continue
    }
}

/// The two closures of [`crate::Trainer::train`] as an observer that never
/// stops the run.
pub(crate) struct Callbacks<S, E> {
    pub(crate) on_step: S,
    pub(crate) on_epoch: E,
}

impl<S: FnMut(u64, u64), E: FnMut(&EpochLog)> Observer for Callbacks<S, E> {
    fn on_step(&mut self, step: u64, total: u64) -> Control {
        (self.on_step)(step, total);
        Control::Continue
    }

    fn on_epoch(&mut self, epoch: &EpochLog) -> Control {
        (self.on_epoch)(epoch);
        Control::Continue
    }
}
