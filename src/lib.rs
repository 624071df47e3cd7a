//! edgestra: one binary that speaks the Mastra agent-server API and runs everything locally.
//!
//! Layout: `config` (the project file) → engines (`tools`, …) → `storage`; `server` is the HTTP
//! layer on top and the only module that knows salvo. `telemetry` keeps logs and spans.

pub mod agent;
pub mod config;
pub mod expr;
pub mod inference;
pub mod mcp;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod network;
pub mod scores;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod tools;
pub mod vector;
pub mod workflow;
