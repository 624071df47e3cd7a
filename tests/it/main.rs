//! Integration tests: each starts the real server on a loopback port with a temporary data
//! directory and talks to it over HTTP. One binary (see DESIGN.md §8).

mod support;

mod agents;

mod cli;
mod conventions;
mod durability;
mod health;
mod inference;
mod local_agents;
mod logs;
mod mcp;
mod memory;
mod openai;
mod playground;
mod telemetry;
mod tools;
mod vector;
mod workflows;
