//! The API's objects as they are stored and returned.

pub mod assistant;
pub mod container;
pub mod file;
pub mod message;
pub mod run;
pub mod thread;
pub mod tools;
pub mod vector_store;

pub use assistant::Assistant;
pub use container::{Container, ContainerFile};
pub use file::FileObject;
pub use message::Message;
pub use run::{Run, RunStep};
pub use thread::Thread;
pub use vector_store::{FileBatch, VectorStore, VectorStoreFile};

use serde::Serialize;

/// `{"id": ..., "object": "assistant.deleted", "deleted": true}`
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}

impl Deleted {
    pub fn new(id: impl Into<String>, object: &'static str) -> Self {
        Self {
            id: id.into(),
            object,
            deleted: true,
        }
    }
}
