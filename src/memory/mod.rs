//! Conversation memory: threads and messages (in every format Mastra clients use), working
//! memory and semantic recall, stored in redb. Knows nothing of HTTP.

pub mod bench;
pub mod config;
pub mod engine;
pub mod messages;
pub mod store;
