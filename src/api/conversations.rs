//! `/v1/conversations`: create (with items), retrieve, update metadata, delete, and items
//! (create, list, retrieve, delete). Items are read from the backing thread, see
//! `domain::conversations`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::ApiJson;
use super::AppState;
use crate::auth::Project;
use crate::domain::conversations::{self, Conversation};
use crate::domain::files::{require_files, FileRef};
use crate::domain::responses::context::{self, Placed};
use crate::domain::responses::input::{self, Input};
use crate::domain::responses::{input_files, reference};
use crate::domain::{messages, threads};
use crate::error::{ApiError, ApiResult};
use crate::objects::Message;
use crate::pagination::{list_of, page_of, ListParams, OBJECT_LISTS};
use crate::validate::{self, Metadata};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", axum::routing::post(create))
        .route(
            "/conversations/{conversation_id}",
            get(retrieve).post(update).delete(remove),
        )
        .route(
            "/conversations/{conversation_id}/items",
            get(list_items).post(create_items),
        )
        .route(
            "/conversations/{conversation_id}/items/{item_id}",
            get(retrieve_item).delete(remove_item),
        )
}

/// Items one request may add (OpenAI's limit).
const MAX_ITEMS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConversation {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    items: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateConversation {
    metadata: Metadata,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateItems {
    items: Vec<Value>,
}

/// One item a request adds, in the request's order: a user or assistant message goes on the
/// backing thread as a message, anything else is kept as context (`thread_items`).
enum Added {
    Message(Box<Message>),
    Item(Value),
}

impl Added {
    fn object(&self) -> Value {
        match self {
            Added::Message(m) => crate::domain::responses::items::message(m, &Default::default()),
            Added::Item(item) => item.clone(),
        }
    }
}

/// The items, each checked (any fault refuses them all), as messages and context items, and
/// the inline files they carry, to store with them. A file's text is in its message; the file
/// is attached for code_interpreter too, which a later response may use.
async fn items_of(
    state: &AppState,
    project: &Project,
    thread_id: &str,
    items: &[Value],
) -> ApiResult<(Vec<Added>, input_files::ToStore)> {
    validate::max_items("items", items, MAX_ITEMS)?;
    let mut refs: Vec<FileRef> = vec![];
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| input::parse(item, &format!("items[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let parsed = reference::resolve(&state.db, project, Some(thread_id), parsed).await?;
    let readers = input_files::Readers {
        db: &state.db,
        blobs: &state.blobs,
        sandbox: &state.sandbox,
    };
    let mut to_store = vec![];
    let mut out = vec![];
    for (i, item) in parsed.into_iter().enumerate() {
        let param = format!("items[{i}]");
        match item {
            // A reference to an item the conversation holds already adds nothing.
            Input::Echo | Input::Reference { .. } => {}
            Input::Message { role, mut parts } if role == "user" || role == "assistant" => {
                let texts =
                    input_files::read(&readers, project, &mut parts, &param, true, &mut to_store)
                        .await?;
                out.push(Added::Message(Box::new(input::message(
                    thread_id, &role, &parts, &texts, true, &param, &mut refs,
                ))));
            }
            Input::Message { role, parts } => out.push(Added::Item(input::message_item(
                &crate::ids::new_id(crate::ids::MESSAGE),
                &role,
                &parts,
            ))),
            Input::FunctionCall {
                call_id,
                name,
                arguments,
            } => out.push(Added::Item(context::function_call(
                &call_id, &name, &arguments,
            ))),
            Input::FunctionCallOutput { call_id, output } => out.push(Added::Item(
                context::function_call_output(&call_id, &output),
            )),
            Input::Item(item) => out.push(Added::Item(item)),
            // A compaction item continues a response's input; a conversation keeps its
            // own history instead.
            Input::Compaction { .. } => return Err(ApiError::invalid_code(
                format!("{param}.type"),
                "invalid_value",
                "A compaction item is input for a response; it cannot be added to a conversation.",
            )),
        }
    }
    require_files(&state.db, project, &refs).await?;
    Ok((out, to_store))
}

/// Stores the items in order; context items follow the message before them.
async fn store_items(
    tx: &mut sqlx::PgConnection,
    project: &Project,
    thread_id: &str,
    added: &[Added],
) -> ApiResult<()> {
    let mut after = context::newest_message(&mut *tx, thread_id).await?;
    for a in added {
        match a {
            Added::Message(m) => {
                messages::insert(&mut *tx, project, m).await?;
                after = Some(m.id.clone());
            }
            Added::Item(item) => {
                let placed = [Placed {
                    after: after.clone(),
                    item: item.clone(),
                }];
                context::insert(tx, project, thread_id, &placed).await?;
            }
        }
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    ApiJson(req): ApiJson<CreateConversation>,
) -> ApiResult<Json<Value>> {
    let metadata = req.metadata.unwrap_or_default();
    validate::metadata("metadata", &metadata)?;
    let thread = threads::new_thread(Default::default());
    let (new, to_store) =
        items_of(&state, &project, &thread.id, &req.items.unwrap_or_default()).await?;
    let object = conversations::new_object(&metadata);
    let mut tx = state.db.begin().await?;
    input_files::store(&state.blobs, &mut tx, &project, to_store).await?;
    threads::insert(&mut *tx, &project, &thread).await?;
    store_items(&mut tx, &project, &thread.id, &new).await?;
    conversations::insert(&mut *tx, &project, &object, &thread.id).await?;
    tx.commit().await?;
    Ok(Json(object))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        conversations::load(&state.db, &project, &id).await?.object,
    ))
}

async fn update(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateConversation>,
) -> ApiResult<Json<Value>> {
    validate::metadata("metadata", &req.metadata)?;
    Ok(Json(
        conversations::set_metadata(&state.db, &project, &id, &req.metadata).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    conversations::delete(&state.db, &project, &id).await?;
    Ok(Json(
        json!({"id": id, "object": "conversation.deleted", "deleted": true}),
    ))
}

async fn all_items(
    state: &AppState,
    c: &Conversation,
    include: &[String],
) -> ApiResult<Vec<Value>> {
    conversations::items(&state.db, &state.blobs, &c.thread_id, include).await
}

async fn list_items(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let c = conversations::load(&state.db, &project, &id).await?;
    let items = all_items(&state, &c, &super::json::includes(&pairs)).await?;
    Ok(Json(page_of(items, &params)))
}

async fn create_items(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateItems>,
) -> ApiResult<Json<Value>> {
    let c = conversations::load(&state.db, &project, &id).await?;
    let (new, to_store) = items_of(&state, &project, &c.thread_id, &req.items).await?;
    let mut tx = state.db.begin().await?;
    input_files::store(&state.blobs, &mut tx, &project, to_store).await?;
    crate::store::get_for_update::<Value>(
        &mut *tx,
        crate::store::Kind::Thread,
        &project,
        &c.thread_id,
        &[],
    )
    .await?;
    if messages::active_run(&mut *tx, &c.thread_id)
        .await?
        .is_some()
    {
        return Err(ApiError::invalid(format!(
            "Can't add items to conversation {id} while a response is in progress."
        )));
    }
    store_items(&mut tx, &project, &c.thread_id, &new).await?;
    tx.commit().await?;
    state.cache.invalidate(&c.thread_id);
    let items: Vec<Value> = new.iter().map(Added::object).collect();
    Ok(Json(list_of(items, false)))
}

fn item_not_found(id: &str, item_id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "Item with id '{item_id}' not found in conversation '{id}'."
    ))
}

async fn retrieve_item(
    State(state): State<AppState>,
    project: Project,
    Path((id, item_id)): Path<(String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let c = conversations::load(&state.db, &project, &id).await?;
    all_items(&state, &c, &super::json::includes(&pairs))
        .await?
        .into_iter()
        .find(|i| i["id"] == item_id.as_str())
        .map(Json)
        .ok_or_else(|| item_not_found(&id, &item_id))
}

/// Deletes a message item; answers with the conversation, as OpenAI does.
async fn remove_item(
    State(state): State<AppState>,
    project: Project,
    Path((id, item_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = conversations::load(&state.db, &project, &id).await?;
    let items = all_items(&state, &c, &[]).await?;
    let item = items
        .iter()
        .find(|i| i["id"] == item_id.as_str())
        .ok_or_else(|| item_not_found(&id, &item_id))?;
    if !context::delete(&state.db, &c.thread_id, &item_id).await? {
        if item["type"] != "message" {
            return Err(ApiError::invalid(
                "This server deletes only message items and items added by hand from a conversation.",
            ));
        }
        conversations::delete_message(&state.db, &c.thread_id, &item_id).await?;
    }
    state.cache.invalidate(&c.thread_id);
    Ok(Json(c.object))
}
