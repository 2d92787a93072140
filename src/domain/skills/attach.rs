//! Skills attached to a container (`skills` on `POST /v1/containers` and on a tool's `auto`
//! container): `skill_reference` (a skill's version, `latest`, or its default) or `inline` (a
//! base64 zip). They are resolved and checked before the container exists, recorded with it
//! (`containers.skills`), and mounted read-only at `/mnt/skills/<name>` whenever its sandbox
//! session starts, on whichever replica: each bundle is kept on the host as a ready tar
//! ([`crate::sandbox::SkillCache`]), so mounting costs one stream into the container.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::bundle::{self, Bundle};
use super::{Skills, Which};
use crate::auth::Project;
use crate::blobs::{BlobStore, Key};
use crate::error::{ApiError, ApiResult};
use crate::sandbox::{SandboxManager, SkillMount, SKILLS_DIR};

/// The most skills one container may have (OpenAI: 200).
pub const MAX_ATTACHED: usize = 200;
/// The most the inline zips of one request may weigh decoded (OpenAI: 50 MiB).
pub const MAX_INLINE_BYTES: usize = 50 * 1024 * 1024;

/// A skill as a container holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attached {
    pub name: String,
    pub description: String,
    /// Where it is mounted: `/mnt/skills/<name>`.
    pub path: String,
    /// The bundle: a skill version's id, or `inline-<sha256>-<name>`.
    pub key: String,
    pub inline: bool,
}

impl Attached {
    fn blob(&self, container_id: &str) -> Key {
        if self.inline {
            Key::container_skill(container_id, &self.key)
        } else {
            Key::skill_version(&self.key)
        }
    }
}

/// Skills checked and ready to record with a new container.
#[derive(Default)]
pub struct Resolved {
    pub attached: Vec<Attached>,
    /// Bundles in hand (inline ones, and references already read), by key, with their zips
    /// for inline ones (stored under the container once it exists).
    bundles: Vec<(String, Bundle, Option<Vec<u8>>)>,
}

impl Resolved {
    pub fn is_empty(&self) -> bool {
        self.attached.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reference {
    skill_id: String,
    version: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inline {
    name: String,
    description: String,
    source: InlineSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InlineSource {
    #[serde(rename = "type")]
    kind: String,
    media_type: String,
    data: String,
}

fn parse<T: serde::de::DeserializeOwned>(param: &str, value: &Value) -> ApiResult<T> {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove("type");
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid_code(param, "invalid_value", format!("Invalid '{param}': {e}."))
    })
}

impl Skills {
    /// Checks `skills` as a request gave them (`param` names the list in errors): every
    /// reference names a version of a skill of the project (404 otherwise), every inline zip
    /// is a valid bundle, names are unique. Nothing is stored.
    pub async fn resolve(
        &self,
        project: &Project,
        param: &str,
        skills: &[Value],
    ) -> ApiResult<Resolved> {
        if skills.len() > MAX_ATTACHED {
            return Err(ApiError::invalid_code(
                param,
                "array_above_max_length",
                format!(
                    "Invalid '{param}': array too long. Expected an array with maximum length {MAX_ATTACHED}, but got an array with length {} instead.",
                    skills.len()
                ),
            ));
        }
        let mut resolved = Resolved::default();
        let mut inline_bytes = 0usize;
        for (i, skill) in skills.iter().enumerate() {
            let at = format!("{param}[{i}]");
            let (attached, bundle, zip) = match skill.get("type").and_then(Value::as_str) {
                Some("skill_reference") => {
                    let r: Reference = parse(&at, skill)?;
                    let which = match &r.version {
                        None | Some(Value::Null) => Which::Default,
                        Some(v) => Which::parse(&format!("{at}.version"), v)?,
                    };
                    let version = self.version(project, &r.skill_id, which).await?;
                    let attached = Attached {
                        path: format!("{SKILLS_DIR}/{}", version.name),
                        name: version.name,
                        description: version.description,
                        key: version.id,
                        inline: false,
                    };
                    (attached, None, None)
                }
                Some("inline") => {
                    let inline: Inline = parse(&at, skill)?;
                    if inline.source.kind != "base64" || inline.source.media_type != "application/zip" {
                        return Err(ApiError::invalid_code(
                            format!("{at}.source"),
                            "invalid_value",
                            format!("Invalid '{at}.source': expected {{\"type\": \"base64\", \"media_type\": \"application/zip\"}}."),
                        ));
                    }
                    bundle::check_name(&inline.name)
                        .map_err(|e| relabel(e, &format!("{at}.name")))?;
                    let zip = base64::engine::general_purpose::STANDARD
                        .decode(inline.source.data.trim())
                        .map_err(|_| {
                            ApiError::invalid_code(
                                format!("{at}.source.data"),
                                "invalid_value",
                                format!("Invalid '{at}.source.data': not base64."),
                            )
                        })?;
                    inline_bytes += zip.len();
                    if inline_bytes > MAX_INLINE_BYTES {
                        return Err(ApiError::invalid_code(
                            param,
                            "invalid_value",
                            format!("The inline skills' zips come to more than {MAX_INLINE_BYTES} bytes."),
                        ));
                    }
                    let bundle = bundle::from_zip(&zip)
                        .map_err(|e| relabel(e, &format!("{at}.source.data")))?;
                    let digest = hex::encode(Sha256::digest(&zip));
                    let attached = Attached {
                        path: format!("{SKILLS_DIR}/{}", inline.name),
                        key: format!("inline-{}-{}", &digest[..32], inline.name),
                        name: inline.name,
                        description: inline.description,
                        inline: true,
                    };
                    (attached, Some(bundle), Some(zip))
                }
                Some(other) => {
                    return Err(ApiError::invalid_code(
                        format!("{at}.type"),
                        "invalid_value",
                        format!("Invalid value: '{other}'. Supported values are: 'skill_reference' and 'inline'."),
                    ))
                }
                None => {
                    return Err(ApiError::invalid_code(
                        format!("{at}.type"),
                        "missing_required_parameter",
                        format!("Missing required parameter: '{at}.type'."),
                    ))
                }
            };
            if resolved.attached.iter().any(|a| a.name == attached.name) {
                return Err(ApiError::invalid_code(
                    param,
                    "invalid_value",
                    format!(
                        "Two skills are named '{}'; each skill in a container needs its own name.",
                        attached.name
                    ),
                ));
            }
            if let Some(bundle) = bundle {
                resolved.bundles.push((attached.key.clone(), bundle, zip));
            }
            resolved.attached.push(attached);
        }
        Ok(resolved)
    }

    /// Records the skills with the new container (inline bundles in the blob store under it)
    /// and mounts them in its session, which starts now: copied in at creation.
    pub async fn attach(
        &self,
        sandbox: &SandboxManager,
        container_id: &str,
        resolved: Resolved,
    ) -> ApiResult<()> {
        if resolved.is_empty() {
            return Ok(());
        }
        for (key, bundle, zip) in &resolved.bundles {
            let attached = resolved.attached.iter().find(|a| &a.key == key);
            if let (Some(attached), Some(zip)) = (attached, zip) {
                self.blobs
                    .put(&attached.blob(container_id), zip.clone())
                    .await
                    .map_err(anyhow::Error::from)?;
            }
            if let Some(attached) = attached {
                cache(sandbox, attached, bundle)?;
            }
        }
        sqlx::query("UPDATE containers SET skills = $2 WHERE id = $1")
            .bind(container_id)
            .bind(sqlx::types::Json(&resolved.attached))
            .execute(&self.db)
            .await?;
        mount(&self.blobs, sandbox, container_id, &resolved.attached).await?;
        sandbox.hold(container_id).await.map_err(|e| {
            ApiError::Internal(anyhow::anyhow!("starting the container's sandbox: {e}"))
        })?;
        Ok(())
    }
}

/// The container's skills, as recorded.
pub async fn of_container(db: &PgPool, container_id: &str) -> sqlx::Result<Vec<Attached>> {
    let skills: Option<sqlx::types::Json<Vec<Attached>>> =
        sqlx::query_scalar("SELECT skills FROM containers WHERE id = $1")
            .bind(container_id)
            .fetch_optional(db)
            .await?;
    Ok(skills.map(|s| s.0).unwrap_or_default())
}

/// Tells the sandbox manager what to mount when the container's session starts here, putting
/// bundles the host does not have yet into its cache (from the blob store).
pub async fn mount(
    blobs: &BlobStore,
    sandbox: &SandboxManager,
    container_id: &str,
    attached: &[Attached],
) -> anyhow::Result<()> {
    if attached.is_empty() {
        return Ok(());
    }
    let mut mounts = Vec::with_capacity(attached.len());
    for skill in attached {
        if !sandbox.skill_cache().has(&skill.key) {
            match blobs.read(&skill.blob(container_id)).await {
                Ok(zip) => {
                    let bundle = bundle::from_zip(&zip).map_err(|e| {
                        anyhow::anyhow!("stored skill bundle {}: {:?}", skill.key, e.body())
                    })?;
                    cache(sandbox, skill, &bundle)?;
                }
                Err(e) => {
                    // Deleted since (a version whose container outlived it elsewhere).
                    tracing::warn!(container_id, key = skill.key, error = %e, "a skill's bundle is gone; not mounted");
                    continue;
                }
            }
        }
        mounts.push(SkillMount {
            dir: skill.name.clone(),
            key: skill.key.clone(),
        });
    }
    sandbox.set_skills(container_id, mounts);
    Ok(())
}

fn cache(sandbox: &SandboxManager, skill: &Attached, bundle: &Bundle) -> anyhow::Result<()> {
    if sandbox.skill_cache().has(&skill.key) {
        return Ok(());
    }
    let tar = bundle.to_tar(&skill.name)?;
    sandbox.skill_cache().put(&skill.key, &tar)?;
    Ok(())
}

/// What the model is told about the container's skills (empty when it has none).
pub fn context_note(attached: &[Attached]) -> Option<String> {
    if attached.is_empty() {
        return None;
    }
    let lines: Vec<String> = attached
        .iter()
        .map(|s| {
            format!(
                "- {}: {} (file: {}/SKILL.md)",
                s.name, s.description, s.path
            )
        })
        .collect();
    Some(format!(
        "## Skills\nA skill is a folder of instructions, scripts and resources anchored by a SKILL.md, \
mounted read-only in the container. Open a skill's SKILL.md before using it, and follow it.\n\
### Available skills\n{}",
        lines.join("\n")
    ))
}

fn relabel(e: ApiError, param: &str) -> ApiError {
    match e {
        ApiError::InvalidRequest { message, code, .. } => ApiError::InvalidRequest {
            message,
            param: Some(param.to_string()),
            code,
        },
        other => other,
    }
}
