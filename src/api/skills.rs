//! `/v1/skills`: create (multipart `files[]` with paths in the filenames, or one zip), list,
//! retrieve, update (`default_version`), delete, `/content` (the default version's zip), and
//! `/versions` with the same under each version. The work is in [`crate::domain::skills`].

use std::collections::HashMap;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::json::ApiJson;
use super::AppState;
use crate::auth::Project;
use crate::domain::skills::bundle::{self, Part, MAX_ZIP_BYTES};
use crate::domain::skills::{DeletedVersion, Skill, SkillVersion, Which};
use crate::error::{ApiError, ApiResult};
use crate::objects::Deleted;
use crate::pagination::{ListPage, ListParams, OBJECT_LISTS};

/// A request body may carry a whole zip plus the form around it.
const MAX_FORM_BYTES: usize = MAX_ZIP_BYTES as usize + 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/skills",
            get(list)
                .post(create)
                .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            "/skills/{skill_id}",
            get(retrieve).post(update).delete(remove),
        )
        .route("/skills/{skill_id}/content", get(content))
        .route(
            "/skills/{skill_id}/versions",
            get(list_versions)
                .post(create_version)
                .layer(DefaultBodyLimit::max(MAX_FORM_BYTES)),
        )
        .route(
            "/skills/{skill_id}/versions/{version}",
            get(retrieve_version).delete(remove_version),
        )
        .route(
            "/skills/{skill_id}/versions/{version}/content",
            get(version_content),
        )
}

/// The form: the files (`files`, `files[]`) and `default` (versions only).
struct Form {
    parts: Vec<Part>,
    default: Option<bool>,
}

async fn receive(mut multipart: Multipart) -> ApiResult<Form> {
    let mut form = Form {
        parts: vec![],
        default: None,
    };
    let mut total = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("files" | "files[]") => {}
            Some("default") => {
                let text = field.text().await.map_err(multipart_error)?;
                form.default = Some(match text.trim() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    other => {
                        return Err(ApiError::invalid_code(
                            "default",
                            "invalid_type",
                            format!("Invalid 'default': expected a boolean, but got '{other}'."),
                        ))
                    }
                });
                continue;
            }
            _ => continue,
        }
        // The path is the part's filename, directories included (e.g. `my-skill/SKILL.md`).
        let filename = field.file_name().unwrap_or_default().to_string();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            total += chunk.len();
            if total as u64 > MAX_ZIP_BYTES {
                return Err(bundle::invalid(format!(
                    "The upload is larger than {MAX_ZIP_BYTES} bytes."
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        form.parts.push(Part { filename, bytes });
    }
    Ok(form)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("Request body too large.".into())
    } else {
        ApiError::invalid(format!("Invalid multipart body: {}", e.body_text()))
    }
}

fn form_rejection(e: axum::extract::multipart::MultipartRejection) -> ApiError {
    ApiError::invalid_code(
        "files",
        "invalid_request",
        format!(
            "Send the skill as multipart/form-data 'files' parts: {}",
            e.body_text()
        ),
    )
}

async fn create(
    State(state): State<AppState>,
    project: Project,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<Skill>> {
    let form = receive(multipart.map_err(form_rejection)?).await?;
    let bundle = bundle::from_parts(form.parts)?;
    Ok(Json(
        state.containers.skills().create(&project, &bundle).await?,
    ))
}

async fn list(
    State(state): State<AppState>,
    project: Project,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<Skill>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    Ok(Json(
        state.containers.skills().list(&project, &params).await?,
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Skill>> {
    Ok(Json(
        state.containers.skills().retrieve(&project, &id).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    default_version: Option<Value>,
}

async fn update(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Update>,
) -> ApiResult<Json<Skill>> {
    let version = req.default_version.ok_or_else(|| {
        ApiError::invalid_code(
            "default_version",
            "missing_required_parameter",
            "Missing required parameter: 'default_version'.",
        )
    })?;
    let skills = state.containers.skills();
    Ok(Json(skills.set_default(&project, &id, &version).await?))
}

async fn remove(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    state.containers.skills().delete(&project, &id).await?;
    Ok(Json(Deleted::new(id, "skill.deleted")))
}

async fn content(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let skills = state.containers.skills();
    zip_response(skills.content(&project, &id, Which::Default).await?)
}

async fn create_version(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<Json<SkillVersion>> {
    let skills = state.containers.skills();
    // An unknown skill is a 404 before the upload is even read.
    skills.retrieve(&project, &id).await?;
    let form = receive(multipart.map_err(form_rejection)?).await?;
    let bundle = bundle::from_parts(form.parts)?;
    let make_default = form.default.unwrap_or(false);
    Ok(Json(
        skills
            .create_version(&project, &id, &bundle, make_default)
            .await?,
    ))
}

async fn list_versions(
    State(state): State<AppState>,
    project: Project,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<ListPage<SkillVersion>>> {
    let params = ListParams::parse(&query, OBJECT_LISTS)?;
    let skills = state.containers.skills();
    Ok(Json(skills.list_versions(&project, &id, &params).await?))
}

fn which(version: &str) -> ApiResult<Which> {
    Which::parse("version", &Value::String(version.to_string()))
}

async fn retrieve_version(
    State(state): State<AppState>,
    project: Project,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<SkillVersion>> {
    let skills = state.containers.skills();
    Ok(Json(skills.version(&project, &id, which(&version)?).await?))
}

async fn remove_version(
    State(state): State<AppState>,
    project: Project,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<DeletedVersion>> {
    let skills = state.containers.skills();
    Ok(Json(
        skills
            .delete_version(&project, &id, which(&version)?)
            .await?,
    ))
}

async fn version_content(
    State(state): State<AppState>,
    project: Project,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let skills = state.containers.skills();
    zip_response(skills.content(&project, &id, which(&version)?).await?)
}

fn zip_response(bytes: bytes::Bytes) -> ApiResult<Response> {
    Ok(([(header::CONTENT_TYPE, "application/zip")], bytes).into_response())
}
