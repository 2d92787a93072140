//! `/v1/files`: list, retrieve, delete, download, and the file lookups other resources use.
//! Uploads are in [`upload`]; the lookups other resources use are in `domain::files`.

mod upload;

use crate::domain::files::{content_type, get_live, LIVE};

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::types::Json as SqlJson;
use sqlx::{QueryBuilder, Row};

use super::AppState;
use crate::auth::Project;
use crate::blobs::Key;
use crate::error::{ApiError, ApiResult};
use crate::objects::{Deleted, FileObject};
use crate::pagination::{ListPage, ListParams, Order, FILE_LISTS};
use crate::store::{self, Kind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/files",
            get(list)
                .post(upload::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/files/{file_id}", get(retrieve).delete(remove))
        .route("/files/{file_id}/content", get(content))
}

/// Like `store::list`, but without expired files; the files list has no `before`.
async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<FileObject>>> {
    let params = ListParams::parse(&query, FILE_LISTS)?;
    let purpose = query.get("purpose").filter(|p| !p.is_empty());
    let unstorable = |v: Option<&String>| v.is_some_and(|v| v.contains('\0'));
    if unstorable(purpose) || unstorable(params.after.as_ref()) {
        return Ok(Json(ListPage::new(vec![], false)));
    }
    let mut qb = QueryBuilder::new("SELECT id, data FROM files WHERE project = ");
    qb.push_bind(project.0.as_str());
    qb.push(format!(" AND {LIVE}"));
    if let Some(purpose) = purpose {
        qb.push(" AND purpose = ").push_bind(purpose.as_str());
    }
    let ascending = params.order == Order::Asc;
    if let Some(after) = &params.after {
        let op = if ascending { ">" } else { "<" };
        qb.push(format!(" AND seq {op} (SELECT seq FROM files WHERE id = "))
            .push_bind(after.as_str())
            .push(")");
    }
    qb.push(if ascending {
        " ORDER BY seq ASC"
    } else {
        " ORDER BY seq DESC"
    });
    qb.push(" LIMIT ").push_bind(params.limit as i64 + 1);

    let rows = qb.build().fetch_all(&state.db).await?;
    let has_more = rows.len() > params.limit;
    let mut items = Vec::with_capacity(rows.len().min(params.limit));
    for row in rows.into_iter().take(params.limit) {
        let SqlJson(file): SqlJson<FileObject> = row.try_get("data")?;
        items.push((row.try_get("id")?, file));
    }
    Ok(Json(ListPage::new(items, has_more)))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<FileObject>> {
    Ok(Json(get_live(&state.db, &project, &id).await?))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    get_live(&state.db, &project, &id).await?;
    store::delete(&state.db, Kind::File, &project, &id, &[]).await?;
    state
        .blobs
        .remove(&Key::file(&id))
        .await
        .map_err(anyhow::Error::from)?;
    Ok(Json(Deleted::new(id, "file")))
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let file = get_live(&state.db, &project, &id).await?;
    let (_, bytes) = state.blobs.stream(&Key::file(&id)).await.map_err(|e| {
        ApiError::Internal(anyhow::Error::from(e).context(format!("blob of {id} is missing")))
    })?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file.filename.replace(['"', '\\', '\r', '\n'], "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&file.filename)),
            (header::CONTENT_LENGTH, file.bytes.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}
