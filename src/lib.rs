//! assistd: the OpenAI Assistants API v2, self-hosted, with a code interpreter that really runs.

pub mod api;
pub mod auth;
pub mod blobs;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod executor;
pub mod ids;
pub mod metrics;
pub mod objects;
pub mod pagination;
pub mod retrieval;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod validate;

pub use config::Config;
pub use startup::Application;
