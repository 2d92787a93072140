//! The routing table of upstream models: `ASSISTD_UPSTREAMS` entries tried in order, then the
//! default upstream (`ASSISTD_UPSTREAM_BASE_URL` / `_API_KEY`). A run's model picks the first
//! entry whose `models` match it, exactly or by a prefix ending in `*`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use async_openai::config::{AzureConfig, Config, OpenAIConfig};
use async_openai::Client;
use serde::Deserialize;

/// How an upstream is called.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `{base_url}/chat/completions` with `Authorization: Bearer KEY`.
    #[default]
    Openai,
    /// `{base_url}/openai/deployments/{deployment}/chat/completions?api-version=V` with `api-key: KEY`.
    Azure,
}

/// One `ASSISTD_UPSTREAMS` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    models: Vec<String>,
    base_url: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    kind: Kind,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    deployment: Option<String>,
    #[serde(default)]
    max_retries: Option<u32>,
}

/// One upstream, ready to call. Its key is kept out of `Debug`.
pub struct Upstream {
    /// `upstream N` or `default`: what logs and errors call it (never the key).
    pub name: String,
    pub models: Vec<String>,
    pub base_url: String,
    api_key: String,
    pub kind: Kind,
    api_version: String,
    deployment: Option<String>,
    pub max_retries: u32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("models", &self.models)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("kind", &self.kind)
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Whether this upstream's `models` list claims `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => pattern == model,
            })
    }

    /// A chat client for `model` on this upstream, sharing `http`'s connection pool.
    pub fn client(&self, http: &reqwest::Client, model: &str) -> Client<Box<dyn Config>> {
        let config: Box<dyn Config> = match self.kind {
            Kind::Openai => Box::new(
                OpenAIConfig::new()
                    .with_api_base(&self.base_url)
                    .with_api_key(&self.api_key),
            ),
            Kind::Azure => Box::new(
                AzureConfig::new()
                    .with_api_base(&self.base_url)
                    .with_api_key(&self.api_key)
                    .with_api_version(&self.api_version)
                    .with_deployment_id(path_segment(self.deployment.as_deref().unwrap_or(model))),
            ),
        };
        Client::build(http.clone(), config)
    }

    /// Where this upstream serves `path` (`embeddings`, `chat/completions`) for `model`:
    /// `{base_url}/{path}` with a bearer key, or Azure's deployment path with its `api-key` header.
    pub fn endpoint(
        &self,
        model: &str,
        path: &str,
    ) -> anyhow::Result<crate::retrieval::embed::Endpoint> {
        use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
        let mut headers = HeaderMap::new();
        let url = match self.kind {
            Kind::Openai => {
                if !self.api_key.is_empty() {
                    headers.insert(
                        AUTHORIZATION,
                        HeaderValue::from_str(&format!("Bearer {}", self.api_key))?,
                    );
                }
                format!("{}/{path}", self.base_url)
            }
            Kind::Azure => {
                headers.insert("api-key", HeaderValue::from_str(&self.api_key)?);
                format!(
                    "{}/openai/deployments/{}/{path}?api-version={}",
                    self.base_url,
                    path_segment(self.deployment.as_deref().unwrap_or(model)),
                    self.api_version
                )
            }
        };
        Ok(crate::retrieval::embed::Endpoint {
            url,
            headers,
            secret: self.api_key.clone(),
            upstream: self.name.clone(),
        })
    }

    /// `owned_by` for models this upstream serves that it says nothing about.
    fn owner(&self) -> String {
        match self.kind {
            Kind::Openai => "assistd".into(),
            Kind::Azure => "azure".into(),
        }
    }

    /// Replaces this upstream's key wherever an upstream echoed it into a message.
    pub fn scrub(&self, message: String) -> String {
        if self.api_key.len() < 4 {
            return message;
        }
        message.replace(&self.api_key, "<redacted>")
    }

    /// The models this upstream's own model list names, if it answers one (a failure is `[]`).
    pub async fn listed_models(&self, http: &reqwest::Client) -> Vec<ListedModel> {
        let request = match self.kind {
            Kind::Openai => {
                let r = http.get(format!("{}/models", self.base_url));
                if self.api_key.is_empty() {
                    r
                } else {
                    r.bearer_auth(&self.api_key)
                }
            }
            Kind::Azure => http
                .get(format!("{}/openai/models", self.base_url))
                .query(&[("api-version", &self.api_version)])
                .header("api-key", &self.api_key),
        };
        let answer = async {
            let response = request
                .timeout(Duration::from_secs(5))
                .send()
                .await?
                .error_for_status()?;
            response.json::<ModelList>().await
        };
        match answer.await {
            Ok(list) => list.data,
            Err(e) => {
                tracing::debug!(upstream = %self.name, error = %e.without_url(), "upstream lists no models");
                vec![]
            }
        }
    }
}

#[derive(Deserialize)]
struct ModelList {
    #[serde(default)]
    data: Vec<ListedModel>,
}

/// One entry of an upstream's `/models` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct ListedModel {
    pub id: String,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// The routing table, built once at start and shared by the model client and `/v1/models`.
#[derive(Clone, Debug)]
pub struct Upstreams {
    inner: Arc<Table>,
}

#[derive(Debug)]
struct Table {
    routes: Vec<Upstream>,
    default: Option<Upstream>,
    /// One connection pool for every upstream.
    http: reqwest::Client,
}

/// A model `/v1/models` lists, with the upstream that serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
    pub id: String,
    pub created: i64,
    pub owned_by: String,
}

impl Upstreams {
    /// Builds the table from `ASSISTD_UPSTREAMS` (JSON, or `@/path/to/file.json`; empty: none)
    /// and the default upstream (an empty `default_base_url`: no default). A malformed entry is
    /// an error naming it.
    pub fn build(
        setting: &str,
        default_base_url: &str,
        default_api_key: &str,
        max_retries: u32,
    ) -> anyhow::Result<Self> {
        let routes = parse(setting, max_retries)?;
        let default = if default_base_url.trim().is_empty() {
            None
        } else {
            let base_url = check_base_url(default_base_url).context("ASSISTD_UPSTREAM_BASE_URL")?;
            check_key(default_api_key).context("ASSISTD_UPSTREAM_API_KEY")?;
            Some(Upstream {
                name: "default".into(),
                models: vec![],
                base_url,
                api_key: default_api_key.to_string(),
                kind: Kind::Openai,
                api_version: String::new(),
                deployment: None,
                max_retries,
            })
        };
        Ok(Self {
            inner: Arc::new(Table {
                routes,
                default,
                http: reqwest::Client::new(),
            }),
        })
    }

    /// The upstream that serves `model`: the first matching entry, else the default.
    pub fn pick(&self, model: &str) -> Option<&Upstream> {
        self.inner
            .routes
            .iter()
            .find(|u| u.serves(model))
            .or(self.inner.default.as_ref())
    }

    /// Every upstream, entries first, then the default.
    pub fn all(&self) -> impl Iterator<Item = &Upstream> {
        self.inner.routes.iter().chain(self.inner.default.as_ref())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The models the upstreams serve: each entry's exact `models` names, then what each
    /// upstream's own model list names, where it answers one. A listed model appears only if
    /// a run with it would really go to the upstream that listed it; each id appears once.
    pub async fn models(&self) -> Vec<ServedModel> {
        let mut served: Vec<ServedModel> = vec![];
        let mut add = |model: ServedModel| {
            if !served.iter().any(|m| m.id == model.id) {
                served.push(model);
            }
        };
        for upstream in self.all() {
            for id in upstream.models.iter().filter(|m| !m.ends_with('*')) {
                add(ServedModel {
                    id: id.clone(),
                    created: 0,
                    owned_by: upstream.owner(),
                });
            }
        }
        let answers = futures::future::join_all(
            self.all()
                .map(|u| async move { (u, u.listed_models(self.http()).await) }),
        )
        .await;
        for (upstream, listed) in answers {
            for model in listed {
                if self.pick(&model.id).map(|u| u.name.as_str()) != Some(upstream.name.as_str()) {
                    continue;
                }
                add(ServedModel {
                    owned_by: model.owned_by.unwrap_or_else(|| upstream.owner()),
                    created: model.created.unwrap_or(0),
                    id: model.id,
                });
            }
        }
        served
    }
}

fn parse(setting: &str, max_retries: u32) -> anyhow::Result<Vec<Upstream>> {
    let setting = setting.trim();
    if setting.is_empty() {
        return Ok(vec![]);
    }
    let text = match setting.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("ASSISTD_UPSTREAMS: cannot read {path}"))?,
        None => setting.to_string(),
    };
    let values: Vec<serde_json::Value> = serde_json::from_str(&text)
        .context("ASSISTD_UPSTREAMS: not a JSON list of upstream entries")?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let name = format!("upstream {}", i + 1);
            let entry: Entry = serde_json::from_value(value)
                .with_context(|| format!("ASSISTD_UPSTREAMS entry {}", i + 1))?;
            let models = format!("{:?}", entry.models);
            check_entry(entry, name, max_retries)
                .with_context(|| format!("ASSISTD_UPSTREAMS entry {} (models {models})", i + 1))
        })
        .collect()
}

fn check_entry(entry: Entry, name: String, max_retries: u32) -> anyhow::Result<Upstream> {
    if entry.models.is_empty() {
        bail!("`models` is empty: name at least one model or a prefix ending in `*`");
    }
    for m in &entry.models {
        if m.is_empty() || m.trim() != m {
            bail!("`models` has an empty or space-padded name {m:?}");
        }
        if m.trim_end_matches('*').contains('*') {
            bail!("`models` entry {m:?}: `*` may only end a prefix");
        }
    }
    let base_url = check_base_url(&entry.base_url).context("`base_url`")?;
    check_key(&entry.api_key).context("`api_key`")?;
    let api_version = match (entry.kind, entry.api_version) {
        (Kind::Azure, Some(v)) if !v.trim().is_empty() => v,
        (Kind::Azure, _) => bail!("kind `azure` needs an `api_version`"),
        (Kind::Openai, Some(_)) => bail!("`api_version` is only for kind `azure`"),
        (Kind::Openai, None) => String::new(),
    };
    match (&entry.kind, &entry.deployment) {
        (Kind::Openai, Some(_)) => bail!("`deployment` is only for kind `azure`"),
        (_, Some(d)) if d.is_empty() || !d.chars().all(is_unreserved) => {
            bail!("`deployment` {d:?} must be a non-empty name of letters, digits, `-`, `_`, `.`")
        }
        _ => {}
    }
    if entry.kind == Kind::Azure && entry.api_key.is_empty() {
        bail!("kind `azure` needs an `api_key`");
    }
    Ok(Upstream {
        name,
        models: entry.models,
        base_url,
        api_key: entry.api_key,
        kind: entry.kind,
        api_version,
        deployment: entry.deployment,
        max_retries: entry.max_retries.unwrap_or(max_retries),
    })
}

fn check_base_url(raw: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| anyhow::anyhow!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{raw:?} is not an http(s) URL");
    }
    if url.query().is_some() {
        bail!("{raw:?} must not carry a query");
    }
    Ok(raw.trim().trim_end_matches('/').to_string())
}

/// Keys go into a header: refuse what no header can carry (instead of panicking per call).
fn check_key(key: &str) -> anyhow::Result<()> {
    if key.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        bail!("the key holds characters a header cannot carry (spaces, control or non-ASCII)")
    }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A model name as one URL path segment.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if is_unreserved(b as char) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: &str, default: &str) -> Upstreams {
        Upstreams::build(json, default, "sk-default", 2).unwrap()
    }

    #[test]
    fn the_first_matching_entry_serves_a_model_and_the_rest_go_to_the_default() {
        let t = table(
            r#"[{"models": ["gpt-4o", "claude-*"], "base_url": "http://a/v1", "api_key": "k1"},
                {"models": ["claude-3*", "gpt-4o-mini"], "base_url": "http://b", "api_key": "k2",
                 "kind": "azure", "api_version": "2024-05-01-preview"}]"#,
            "http://default/v1",
        );
        assert_eq!(t.pick("gpt-4o").unwrap().name, "upstream 1");
        assert_eq!(t.pick("claude-3-opus").unwrap().name, "upstream 1");
        assert_eq!(t.pick("gpt-4o-mini").unwrap().name, "upstream 2");
        assert_eq!(t.pick("gpt-4o-2024").unwrap().name, "default");
        assert!(table("", "").pick("anything").is_none());
    }

    #[test]
    fn malformed_entries_are_refused_naming_the_entry() {
        let bad = [
            r#"{"models": []}"#,
            r#"[{"models": [], "base_url": "http://a"}]"#,
            r#"[{"models": ["a*b"], "base_url": "http://a"}]"#,
            r#"[{"models": ["a"], "base_url": "not a url"}]"#,
            r#"[{"models": ["a"], "base_url": "http://a", "kind": "azure", "api_key": "k"}]"#,
            r#"[{"models": ["a"], "base_url": "http://a", "kind": "bedrock"}]"#,
            r#"[{"models": ["a"], "base_url": "http://a", "deployment": "d"}]"#,
            r#"[{"models": ["a"], "base_url": "http://a", "api_key": "k", "extra": 1}]"#,
        ];
        for json in bad {
            let e = Upstreams::build(json, "", "", 2).unwrap_err();
            assert!(
                format!("{e:#}").contains("ASSISTD_UPSTREAMS"),
                "{json}: {e:#}"
            );
        }
        let e = Upstreams::build(
            r#"[{"models": ["a"], "base_url": "http://a"}, {"models": ["b"], "base_url": "ftp://b"}]"#,
            "",
            "",
            2,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("entry 2"), "{e:#}");
    }

    #[test]
    fn keys_stay_out_of_debug_and_scrubbed_messages() {
        let t = table(
            r#"[{"models": ["m"], "base_url": "http://a", "api_key": "sk-secret-123"}]"#,
            "",
        );
        let u = t.pick("m").unwrap();
        assert!(!format!("{t:?}").contains("sk-secret-123"));
        assert_eq!(
            u.scrub("bad key sk-secret-123".into()),
            "bad key <redacted>"
        );
    }

    #[test]
    fn model_names_become_one_path_segment() {
        assert_eq!(path_segment("gpt-4o.mini_1"), "gpt-4o.mini_1");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
