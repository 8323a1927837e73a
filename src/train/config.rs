//! How to train: the configuration of a run and the order it visits the data.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::nn::{Optimizer, Schedule};

/// The default cap on the logged steps a run keeps in memory and in its
/// report ([`TrainConfig::max_logged_steps`](super::TrainConfig)). At 20
/// layers an entry is about 4 KB, so the cap bounds a report near 4 MB
/// however long the run.
pub const DEFAULT_MAX_LOGGED_STEPS: usize = 1000;

/// How to train. Start from the default (10 epochs of plain SGD at
/// PyTorch's default rate, batch 64) and set what differs; [`TrainConfig::validate`] (called by
/// [`crate::Trainer::new`]) names any field out of range.
///
/// ```
/// use fusedmlp::{Optimizer, TrainConfig};
///
/// let config = TrainConfig::default()
///     .with_epochs(20)
///     .with_batch_size(32)
///     .with_optimizer(Optimizer::adam()) // at Adam's default rate, 1e-3
///     .with_clip_norm(1.0)
///     .with_log_every(25); // per-layer diagnostics every 25 steps
/// assert_eq!(config.lr(), 1e-3);
/// assert!(config.validate(1_000).is_ok());
/// let err = config.with_batch_size(0).validate(1_000).unwrap_err();
/// assert_eq!(err.field(), Some("TrainConfig::batch_size"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Examples per step (the last partial batch of an epoch is dropped).
    pub batch_size: usize,
    /// Base learning rate; `None` takes the optimizer's own default,
    /// PyTorch's ([`Optimizer::default_learning_rate`]: 1e-3 for SGD, Adam
    /// and AdamW, 1e-2 for RMSprop). [`TrainConfig::lr`] is the rate used.
    pub learning_rate: Option<f32>,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Steps of linear warmup.
    pub warmup_steps: u64,
    /// Clip gradients to this global L2 norm.
    pub clip_norm: Option<f32>,
    /// Log diagnostics every this many steps (and at the first step).
    pub log_every: u64,
    /// The most logged steps kept in memory and in the report; past it,
    /// older entries are thinned (see [`super::thin_logged_steps`]).
    #[serde(default = "default_max_logged_steps")]
    pub max_logged_steps: usize,
    /// Seed of the shuffling.
    pub seed: u64,
    /// Which kernels run the hidden layers (see [`Kernels`]).
    #[serde(default)]
    pub kernels: Kernels,
}

/// Which kernels run a step's hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kernels {
    /// The fully fused stack where the net allows it and it is the faster
    /// path ([`Kernels::auto_picks_fused`]), else layered.
    #[default]
    Auto,
    /// The fully fused stack ([`crate::gpu::FusedShape`]): every hidden layer
    /// forward in one dispatch, backward in two. Needs hidden layers of one
    /// width (at most 128) and one activation, without normalisation,
    /// residual connections, dropout or learned slopes; anything else is
    /// an error that says which.
    Fused,
    /// One fused linear kernel per layer and pass.
    Layered,
}

impl Kernels {
    /// The rule [`Kernels::Auto`] follows for a net the fused path can
    /// take: fused up to 64 rows a batch. Measured with `fusedmlp bench
    /// --fused` on lavapipe: 2.0x faster than the layered path for 20 x 64
    /// at batch 32, 0.4-0.6x at batch 256, where the layered GEMMs' larger
    /// tiles win.
    pub fn auto_picks_fused(batch_size: usize) -> bool {
        batch_size <= 64
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernels::Auto => "auto",
            Kernels::Fused => "fused",
            Kernels::Layered => "layered",
        })
    }
}

impl std::str::FromStr for Kernels {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(Kernels::Auto),
            "fused" => Ok(Kernels::Fused),
            "layered" => Ok(Kernels::Layered),
            other => Err(Error::Config(format!(
                "unknown kernels '{other}': use auto, fused or layered"
            ))),
        }
    }
}

fn default_max_logged_steps() -> usize {
    DEFAULT_MAX_LOGGED_STEPS
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            learning_rate: None,
            optimizer: Optimizer::sgd(),
            schedule: Schedule::Constant,
            warmup_steps: 0,
            clip_norm: None,
            log_every: 50,
            max_logged_steps: DEFAULT_MAX_LOGGED_STEPS,
            seed: 0,
            kernels: Kernels::Auto,
        }
    }
}

impl TrainConfig {
    /// Sets [`TrainConfig::epochs`] (passes over the training split).
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Sets [`TrainConfig::batch_size`] (examples per step).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`TrainConfig::learning_rate`] (the base rate; `None` takes the optimizer's default); `None` clears it.
    pub fn with_learning_rate(mut self, learning_rate: impl Into<Option<f32>>) -> Self {
        self.learning_rate = learning_rate.into();
        self
    }

    /// Sets [`TrainConfig::optimizer`] (the optimizer).
    pub fn with_optimizer(mut self, optimizer: Optimizer) -> Self {
        self.optimizer = optimizer;
        self
    }

    /// Sets [`TrainConfig::schedule`] (the learning-rate schedule).
    pub fn with_schedule(mut self, schedule: Schedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Sets [`TrainConfig::warmup_steps`] (steps of linear warmup).
    pub fn with_warmup_steps(mut self, warmup_steps: u64) -> Self {
        self.warmup_steps = warmup_steps;
        self
    }

    /// Sets [`TrainConfig::clip_norm`] (clipping to a global gradient norm); `None` clears it.
    pub fn with_clip_norm(mut self, clip_norm: impl Into<Option<f32>>) -> Self {
        self.clip_norm = clip_norm.into();
        self
    }

    /// Sets [`TrainConfig::log_every`] (steps between logged diagnostics).
    pub fn with_log_every(mut self, log_every: u64) -> Self {
        self.log_every = log_every;
        self
    }

    /// Sets [`TrainConfig::max_logged_steps`] (logged steps kept).
    pub fn with_max_logged_steps(mut self, max_logged_steps: usize) -> Self {
        self.max_logged_steps = max_logged_steps;
        self
    }

    /// Sets [`TrainConfig::seed`] (the shuffling seed).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`TrainConfig::kernels`] (which kernels run the hidden layers).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The base learning rate used: [`TrainConfig::learning_rate`], or the
    /// optimizer's default where it is `None`.
    pub fn lr(&self) -> f32 {
        self.learning_rate
            .unwrap_or_else(|| self.optimizer.default_learning_rate())
    }

    /// Checks every field against the training data size.
    pub fn validate(&self, train_rows: usize) -> Result<(), Error> {
        if self.epochs == 0 {
            return Err(Error::setting("TrainConfig::epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::setting("TrainConfig::batch_size", 0, "at least 1"));
        }
        if train_rows == 0 {
            return Err(Error::Config(
                "the training split has no rows; give a data set with at least one row per batch"
                    .into(),
            ));
        }
        if self.batch_size > train_rows {
            return Err(Error::setting(
                "TrainConfig::batch_size",
                self.batch_size,
                format!("at most the training split's {train_rows} rows"),
            ));
        }
        if let Some(lr) = self.learning_rate {
            if !lr.is_finite() || lr <= 0.0 {
                return Err(Error::setting(
                    "TrainConfig::learning_rate",
                    lr,
                    "positive and finite (None: the optimizer's default)",
                ));
            }
        }
        if let Some(c) = self.clip_norm {
            if !c.is_finite() || c <= 0.0 {
                return Err(Error::setting(
                    "TrainConfig::clip_norm",
                    c,
                    "positive and finite (None: no clipping)",
                ));
            }
        }
        if self.log_every == 0 {
            return Err(Error::setting("TrainConfig::log_every", 0, "at least 1"));
        }
        if self.max_logged_steps < 2 {
            return Err(Error::setting(
                "TrainConfig::max_logged_steps",
                self.max_logged_steps,
                "at least 2 (the first and the last logged step)",
            ));
        }
        self.optimizer.validate()
    }
}

/// The order in which epoch `epoch` visits `n` rows.
pub fn shuffle_order(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut rng =
        StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    order.shuffle(&mut rng);
    order
}
