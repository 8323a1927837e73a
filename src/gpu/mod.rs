//! The GPU host layer: device context, tensors, shader assembly, kernel
//! generation, autotuning, timing and dispatch.

pub(crate) mod autotune;
pub(crate) mod cache;
pub(crate) mod context;
pub(crate) mod elementwise;
pub(crate) mod fused;
mod fused_sg;
pub(crate) mod gemm;
mod gemm_kn;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod plan;
pub(crate) mod readback;
pub(crate) mod shader;
pub(crate) mod tensor;
pub(crate) mod timing;

pub use autotune::{AUTOTUNE_ENV, CACHE_DIR_ENV, FORCE_VARIANT_ENV};
pub use context::{Gpu, ADAPTER_ENV, TIMEOUT_ENV};
pub use fused::{
    FusedForward, FusedGrads, FusedKernel, FusedShape, FUSED_KERNEL_ENV, MAX_FUSED_WIDTH,
};
pub use linear::{LinearGrads, LinearShape};
pub use norm::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, LAYER_NORM_EPS};
pub use plan::StepPlan;
pub use tensor::{GpuTensor, VIEW_ALIGN};

#[cfg(test)]
mod tests;
