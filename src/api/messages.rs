//! `/v1/threads/{thread_id}/messages`: create, list, retrieve, modify, delete.
//! Also the message-building rules that thread creation and runs reuse.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgExecutor;

use super::json::{from_value, param_path, reroot, ApiJson};
use super::{cached, AppState};
use crate::auth::Project;
use crate::domain::files::{require_files, FileRef};
use crate::domain::messages::{self, active_run, insert, text};
use crate::error::{ApiError, ApiResult};
use crate::objects::message::{Attachment, Content, ImageFile, ImageUrl};
use crate::objects::{Deleted, Message};
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};
use crate::store::{self, Kind};
use crate::validate::{self, Metadata};
use axum::response::Response;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/threads/{thread_id}/messages", get(list).post(create))
        .route(
            "/threads/{thread_id}/messages/{message_id}",
            get(retrieve).post(modify).delete(remove),
        )
}

/// Files one message may carry (OpenAI's limit).
const MAX_ATTACHMENTS: usize = 10;

/// A message as a client sends it, in a create-message body, a new thread's `messages`
/// or a run's `additional_messages`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub role: String,
    pub content: Value,
    #[serde(default)]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// One content part of a new message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ContentPart {
    Text { text: String },
    ImageFile { image_file: ImageFile },
    ImageUrl { image_url: ImageUrl },
}

impl NewMessage {
    /// Validates the message (`param` prefixes field names, e.g. `messages[0]`) and builds it.
    pub async fn build<'e>(
        self,
        db: impl PgExecutor<'e> + Copy,
        project: &Project,
        param: &str,
        thread_id: &str,
    ) -> ApiResult<Message> {
        let p = |field: &str| param_path(param, field);
        if self.role != "user" && self.role != "assistant" {
            return Err(ApiError::invalid_code(
                p("role"),
                "invalid_value",
                format!(
                    "Invalid value: '{}'. Supported values are: 'user' and 'assistant'.",
                    self.role
                ),
            ));
        }
        let content = parse_content(&p("content"), self.content)?;
        let attachments = self.attachments.unwrap_or_default();
        validate::max_items(&p("attachments"), &attachments, MAX_ATTACHMENTS)?;
        let images = content.iter().enumerate().filter_map(|(i, c)| match c {
            Content::ImageFile { image_file } => Some(FileRef {
                param: p(&format!("content[{i}].image_file.file_id")),
                id: image_file.file_id.clone(),
            }),
            _ => None,
        });
        let attached = attachments.iter().enumerate().map(|(i, a)| FileRef {
            param: p(&format!("attachments[{i}].file_id")),
            id: a.file_id.clone(),
        });
        require_files(db, project, &images.chain(attached).collect::<Vec<_>>()).await?;
        let metadata = self.metadata.unwrap_or_default();
        validate::metadata(&p("metadata"), &metadata)?;
        Ok(messages::given(
            thread_id,
            self.role,
            content,
            attachments,
            metadata,
        ))
    }
}

fn parse_content(param: &str, content: Value) -> ApiResult<Vec<Content>> {
    let empty = || {
        ApiError::invalid_code(
            param,
            "empty_string",
            format!("Invalid '{param}': message content must be non-empty."),
        )
    };
    match content {
        Value::String(s) if s.is_empty() => Err(empty()),
        Value::String(s) => Ok(vec![text(s)]),
        Value::Array(parts) if parts.is_empty() => Err(ApiError::invalid_code(
            param,
            "empty_array",
            format!("Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead."),
        )),
        Value::Array(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let part: ContentPart =
                    from_value(part).map_err(|e| reroot(e, &format!("{param}[{i}]")))?;
                Ok(match part {
                    ContentPart::Text { text: t } if t.is_empty() => return Err(empty()),
                    ContentPart::Text { text: t } => text(t),
                    ContentPart::ImageFile { image_file } => {
                        let at = format!("{param}[{i}].image_file.detail");
                        image_detail(&at, image_file.detail.as_deref())?;
                        Content::ImageFile { image_file }
                    }
                    ContentPart::ImageUrl { mut image_url } => {
                        let at = format!("{param}[{i}].image_url.detail");
                        image_detail(&at, image_url.detail.as_deref())?;
                        image_url.detail.get_or_insert_with(|| "auto".into());
                        Content::ImageUrl { image_url }
                    }
                })
            })
            .collect(),
        _ => Err(ApiError::invalid_code(
            param,
            "invalid_type",
            format!("Invalid type for '{param}': expected a string or an array of content parts."),
        )),
    }
}

fn image_detail(param: &str, detail: Option<&str>) -> ApiResult<()> {
    match detail {
        None | Some("auto" | "low" | "high") => Ok(()),
        Some(other) => Err(ApiError::invalid_code(
            param,
            "invalid_value",
            format!("Invalid value: '{other}'. Supported values are: 'auto', 'low', and 'high'."),
        )),
    }
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    Path(thread_id): Path<String>,
    ApiJson(req): ApiJson<NewMessage>,
) -> ApiResult<Json<Message>> {
    let mut tx = state.db.begin().await?;
    // Locking the thread serialises this check against a run being created.
    store::get_for_update::<Value>(&mut *tx, Kind::Thread, &project, &thread_id, &[]).await?;
    if let Some(run_id) = active_run(&mut *tx, &thread_id).await? {
        return Err(ApiError::invalid(format!(
            "Can't add messages to {thread_id} while a run {run_id} is active."
        )));
    }
    let message = req.build(&state.db, &project, "", &thread_id).await?;
    insert(&mut *tx, &project, &message).await?;
    tx.commit().await?;
    state.cache.invalidate(&thread_id);
    Ok(Json(message))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Path(thread_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let run_id = query.get("run_id").filter(|r| !r.is_empty());
    let mut filters = vec![("thread_id", thread_id.as_str())];
    if let Some(run_id) = run_id {
        filters.push(("run_id", run_id.as_str()));
    }
    let key = cached::key(
        &project,
        &format!(
            "messages?{}&run_id={}",
            params.cache_key(),
            run_id.map_or("", |r| r)
        ),
    );
    let load = async {
        let page: ListPage<Message> =
            store::list(&state.db, Kind::Message, &project, &filters, &params).await?;
        // Only an empty page can hide an unknown thread; checking then saves a query per list.
        if page.data.is_empty() {
            store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
        }
        Ok(page)
    };
    cached::serve(&state.cache, &thread_id, key, load).await
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let load = async {
        store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
        let filters = [("thread_id", thread_id.as_str())];
        store::get::<Message>(&state.db, Kind::Message, &project, &id, &filters).await
    };
    let key = cached::key(&project, &format!("message/{id}"));
    cached::serve(&state.cache, &thread_id, key, load).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyMessage {
    #[serde(default)]
    metadata: Option<Metadata>,
}

async fn modify(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ModifyMessage>,
) -> ApiResult<Json<Message>> {
    store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
    let mut tx = state.db.begin().await?;
    let mut message: Message = store::get_for_update(
        &mut *tx,
        Kind::Message,
        &project,
        &id,
        &[("thread_id", &thread_id)],
    )
    .await?;
    if let Some(metadata) = req.metadata {
        validate::metadata("metadata", &metadata)?;
        message.metadata = metadata;
    }
    store::put(&mut *tx, Kind::Message, &id, &message).await?;
    tx.commit().await?;
    state.cache.invalidate(&thread_id);
    Ok(Json(message))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path((thread_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    store::require(&state.db, Kind::Thread, &project, &thread_id).await?;
    store::delete(
        &state.db,
        Kind::Message,
        &project,
        &id,
        &[("thread_id", &thread_id)],
    )
    .await?;
    state.cache.invalidate(&thread_id);
    Ok(Json(Deleted::new(id, "thread.message.deleted")))
}
