//! A chat model's decoder: the engine's [`Model`] with one sequence's cache, on the process's
//! inference pool. Any cached prefix can be kept, so a prompt that starts like the previous one
//! runs only its new tokens.

use std::sync::Arc;

use candle_core::Result;

use super::engine::{KvCache, Model, Pool, Scratch};

pub use super::engine::ARCHITECTURES;

pub struct Decoder {
    pub model: Arc<Model>,
    cache: KvCache,
    scratch: Scratch,
    pool: &'static Pool,
}

impl Decoder {
    pub fn load(bytes: &[u8]) -> Result<Decoder> {
        Ok(Decoder::new(Arc::new(Model::load(bytes)?), Pool::global()))
    }

    pub fn new(model: Arc<Model>, pool: &'static Pool) -> Decoder {
        Decoder {
            model,
            cache: KvCache::default(),
            scratch: Scratch::default(),
            pool,
        }
    }

    pub fn context(&self) -> usize {
        self.model.config.context
    }

    /// Tokens in the cache.
    pub fn position(&self) -> usize {
        self.cache.len
    }

    /// Keeps the first `keep` cached positions.
    pub fn truncate(&mut self, keep: usize) {
        self.cache.truncate(keep);
    }

    /// Runs `tokens` after the cached context; returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model
            .forward(self.pool, &mut self.cache, tokens, &mut self.scratch)
    }
}
