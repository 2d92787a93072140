//! The domain layer: what both HTTP surfaces and the executor share (files, messages, threads,
//! vector stores, runs on the queue, containers, responses, conversations). Handlers in `api` are thin adapters over these;
//! nothing here imports `api`.

pub mod containers;
mod content_type;
pub mod conversations;
pub mod files;
pub mod messages;
pub mod responses;
pub mod runs;
pub mod skills;
pub mod threads;
pub mod vector_stores;
