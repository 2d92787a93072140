//! Images in user messages, made ready for the model: an uploaded `image_file` becomes a
//! `data:` URL (chat completions has no file ids), so a vision model sees the picture itself.

use std::collections::HashMap;

use base64::Engine;

use super::run_loop::{internal, RunTask, Stop};
use crate::blobs::Key;
use crate::objects::message::Content;
use crate::objects::Message;

/// What the model accepts as image input (OpenAI's list); other files stay text references.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
/// OpenAI's limit per image.
const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

impl RunTask {
    /// The `data:` URL of every image file the thread's user messages show, by file id, or
    /// `None` when images go to the model as text references (`image_input` off). A file that
    /// is gone, too large or not an image is left out (the model then gets its id).
    pub(super) async fn image_urls(
        &self,
        history: &[Message],
    ) -> Result<Option<HashMap<String, String>>, Stop> {
        if !self.inner.settings.image_input {
            return Ok(None);
        }
        let mut urls = HashMap::new();
        let ids: Vec<String> = history
            .iter()
            .filter(|m| m.role == "user")
            .flat_map(|m| &m.content)
            .filter_map(|c| match c {
                Content::ImageFile { image_file } => Some(image_file.file_id.clone()),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return Ok(Some(urls));
        }
        let files: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, data->>'filename', (data->>'bytes')::bigint FROM files WHERE project = $1 AND id = ANY($2)",
        )
        .bind(&self.project.0)
        .bind(&ids)
        .fetch_all(&self.inner.db)
        .await
        .map_err(internal)?;
        for (id, filename, size) in files {
            let mime = crate::domain::files::content_type(&filename);
            if !IMAGE_TYPES.contains(&mime.as_str()) || size as u64 > MAX_IMAGE_BYTES {
                continue;
            }
            let Ok(bytes) = self.inner.blobs.read(&Key::file(&id)).await else {
                continue;
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            urls.insert(id, format!("data:{mime};base64,{encoded}"));
        }
        Ok(Some(urls))
    }
}
