//! edgestra's own CPU inference engine for GGUF decoders: weights kept in two compact quantized
//! forms (no f32 copy), integer matrix kernels chosen at run time (AVX2, VNNI, portable), a
//! thread pool that shares work in small chunks, and a forward pass whose arithmetic is fixed —
//! the same bits on every CPU — so a model answers the same on every machine.

#[cfg(test)]
mod agreement;
pub mod kernels;
pub mod matmul;
pub mod model;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod simd;
pub mod tiny;
pub mod tiny_chat;

pub use model::{ARCHITECTURES, KvCache, MAX_CONTEXT, Model, Scratch, Step};
pub use pool::Pool;
