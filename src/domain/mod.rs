//! The domain layer: what both HTTP surfaces and the executor share (files, messages, vector
//! stores, runs on the queue, containers). Handlers in `api` are thin adapters over these;
//! nothing here imports `api`.

pub mod containers;
mod content_type;
pub mod files;
pub mod messages;
pub mod runs;
pub mod vector_stores;
