//! The GPU host layer: device context, tensors, shader assembly, kernel
//! generation, autotuning, timing and dispatch.

pub mod autotune;
pub mod context;
pub mod elementwise;
pub mod fused;
mod fused_sg;
pub mod gemm;
pub mod linear;
pub mod norm;
pub mod readback;
pub mod shader;
pub mod tensor;
pub mod timing;

pub use context::Gpu;
pub use linear::{LinearGrads, LinearShape};
pub use tensor::GpuTensor;
