//! Neural-network building blocks: the MLP, initialisers, heads and losses,
//! optimizers and schedules.

pub mod arena;
pub mod init;
pub mod loss;
pub mod mlp;
pub mod optim;

pub use arena::{ParamEntry, ParamKind, ParamLayout};
pub use init::Init;
pub use loss::Head;
pub use mlp::{Mlp, MlpConfig, NormKind, NormPlacement, PreluMode};
pub use optim::{Optimizer, Schedule};
