//! Neural-network building blocks: the MLP, initialisers, heads and losses,
//! optimizers and schedules.

pub(crate) mod arena;
pub(crate) mod config;
pub(crate) mod init;
pub(crate) mod loss;
pub(crate) mod mlp;
pub(crate) mod optim;

pub use arena::{ParamEntry, ParamKind, ParamLayout};
pub use config::{MlpConfig, NormKind, NormPlacement, PreluMode};
pub use init::{gain, Init};
pub use loss::Head;
pub use mlp::{LayerValues, Mlp, NamedParameter, PREDICT_CHUNK_FLOATS};
pub use optim::{Optimizer, Schedule};
