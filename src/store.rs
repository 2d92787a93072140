//! SQL shared by every object table: each has `seq`, `id`, `project`, `created_at` and the
//! object's JSON in `data`. Inserts are per table, since each has its own extra columns.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgExecutor, Postgres, QueryBuilder, Row};

use crate::auth::Project;
use crate::error::{ApiError, ApiResult};
use crate::pagination::{ListPage, ListParams, Order};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Assistant,
    Thread,
    Message,
    File,
    Run,
    Step,
    VectorStore,
    /// Its ids are file ids, which repeat across stores: always filter by `vector_store_id`,
    /// and never [`put`] one (that updates by id alone).
    VectorStoreFile,
    FileBatch,
    Container,
    /// Always filter by `container_id`.
    ContainerFile,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Assistant => "assistants",
            Kind::Thread => "threads",
            Kind::Message => "messages",
            Kind::File => "files",
            Kind::Run => "runs",
            Kind::Step => "run_steps",
            Kind::VectorStore => "vector_stores",
            Kind::VectorStoreFile => "vector_store_files",
            Kind::FileBatch => "vector_store_file_batches",
            Kind::Container => "containers",
            Kind::ContainerFile => "container_files",
        }
    }

    pub fn not_found(self, id: &str) -> ApiError {
        match self {
            Kind::Assistant => ApiError::not_found("assistant", id),
            Kind::Thread => ApiError::not_found("thread", id),
            Kind::Message => ApiError::not_found("message", id),
            Kind::File => ApiError::NotFound(format!("No such File object: {id}")),
            Kind::Run => ApiError::not_found("run", id),
            Kind::Step => ApiError::not_found("run step", id),
            Kind::VectorStore => ApiError::not_found("vector store", id),
            Kind::VectorStoreFile => ApiError::not_found("file", id),
            Kind::FileBatch => ApiError::not_found("vector store file batch", id),
            Kind::Container => ApiError::NotFound(format!("Container with id '{id}' not found.")),
            Kind::ContainerFile => ApiError::NotFound(format!("File with id '{id}' not found.")),
        }
    }

    /// Filter columns a list cursor must match too, where ids are only unique within them.
    fn cursor_scope(self) -> &'static [&'static str] {
        match self {
            Kind::VectorStoreFile => &["vector_store_id"],
            _ => &[],
        }
    }
}

/// A column an object must also match, e.g. a message's `thread_id`.
pub type Filter<'a> = (&'static str, &'a str);

/// Ids and filter values with a NUL character cannot name anything (Postgres refuses them).
fn unstorable(id: &str, filters: &[Filter<'_>]) -> bool {
    id.contains('\0') || filters.iter().any(|(_, v)| v.contains('\0'))
}

fn push_where<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    project: &'a Project,
    filters: &[Filter<'a>],
) {
    qb.push(" WHERE project = ").push_bind(project.0.as_str());
    for (column, value) in filters {
        qb.push(format!(" AND {column} = ")).push_bind(*value);
    }
}

pub async fn get<'e, T: DeserializeOwned>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
    filters: &[Filter<'_>],
) -> ApiResult<T> {
    fetch(db, kind, project, id, filters, false).await
}

/// Locks the row for the rest of the transaction, then reads it.
pub async fn get_for_update<'e, T: DeserializeOwned>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
    filters: &[Filter<'_>],
) -> ApiResult<T> {
    fetch(db, kind, project, id, filters, true).await
}

async fn fetch<'e, T: DeserializeOwned>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
    filters: &[Filter<'_>],
    lock: bool,
) -> ApiResult<T> {
    if unstorable(id, filters) {
        return Err(kind.not_found(id));
    }
    let mut qb = QueryBuilder::new(format!("SELECT data FROM {}", kind.table()));
    push_where(&mut qb, project, filters);
    qb.push(" AND id = ").push_bind(id);
    if lock {
        qb.push(" FOR UPDATE");
    }
    let row = qb.build().fetch_optional(db).await?;
    let row = row.ok_or_else(|| kind.not_found(id))?;
    let Json(object): Json<T> = row.try_get("data")?;
    Ok(object)
}

pub async fn exists<'e>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
) -> ApiResult<bool> {
    if unstorable(id, &[]) {
        return Ok(false);
    }
    let mut qb = QueryBuilder::new(format!("SELECT 1 FROM {}", kind.table()));
    push_where(&mut qb, project, &[]);
    qb.push(" AND id = ").push_bind(id);
    Ok(qb.build().fetch_optional(db).await?.is_some())
}

/// Not found unless the object exists in this project.
pub async fn require<'e>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
) -> ApiResult<()> {
    if exists(db, kind, project, id).await? {
        Ok(())
    } else {
        Err(kind.not_found(id))
    }
}

/// Replaces an object's JSON. The object must exist (callers read it first).
pub async fn put<'e, T: Serialize + Sync>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    id: &str,
    object: &T,
) -> ApiResult<()> {
    sqlx::query(&format!(
        "UPDATE {} SET data = $2 WHERE id = $1",
        kind.table()
    ))
    .bind(id)
    .bind(Json(object))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete<'e>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    id: &str,
    filters: &[Filter<'_>],
) -> ApiResult<()> {
    if unstorable(id, filters) {
        return Err(kind.not_found(id));
    }
    let mut qb = QueryBuilder::new(format!("DELETE FROM {}", kind.table()));
    push_where(&mut qb, project, filters);
    qb.push(" AND id = ").push_bind(id);
    if qb.build().execute(db).await?.rows_affected() == 0 {
        return Err(kind.not_found(id));
    }
    Ok(())
}

/// Deletes the project's row `id` of `table` (a table outside the `Kind`s, whose rows have
/// `id` and `project`); whether there was one.
pub async fn delete_row<'e>(
    db: impl PgExecutor<'e>,
    table: &'static str,
    project: &Project,
    id: &str,
) -> ApiResult<bool> {
    let sql = format!("DELETE FROM {table} WHERE id = $1 AND project = $2");
    let gone = sqlx::query(&sql)
        .bind(id)
        .bind(&project.0)
        .execute(db)
        .await?;
    Ok(gone.rows_affected() > 0)
}

/// One page of a list, ordered by insertion. Cursors are object ids; an unknown cursor
/// yields an empty page.
pub async fn list<'e, T: DeserializeOwned>(
    db: impl PgExecutor<'e>,
    kind: Kind,
    project: &Project,
    filters: &[Filter<'_>],
    params: &ListParams,
) -> ApiResult<ListPage<T>> {
    let table = kind.table();
    let cursors = [params.after.as_deref(), params.before.as_deref()];
    if unstorable("", filters) || cursors.iter().flatten().any(|c| c.contains('\0')) {
        return Ok(ListPage::new(vec![], false));
    }
    let mut qb = QueryBuilder::new(format!("SELECT id, data FROM {table}"));
    push_where(&mut qb, project, filters);

    // Walking towards `before` (without `after`) means reading against the requested order,
    // then reversing. With both cursors the page starts after `after` and stops at `before`.
    let walk_forward = params.after.is_some() || params.before.is_none();
    let ascending = (params.order == Order::Asc) == walk_forward;
    let bounds = [
        (params.after.as_deref(), true),
        (params.before.as_deref(), false),
    ];
    for (cursor, is_after) in bounds {
        let Some(cursor) = cursor else { continue };
        // `after` moves along the order, `before` against it.
        let op = if (params.order == Order::Asc) == is_after {
            ">"
        } else {
            "<"
        };
        // Another project's id is as unknown as a made-up one: it matches no row, the
        // comparison is with NULL and the page is empty.
        qb.push(format!(" AND seq {op} (SELECT seq FROM {table}"));
        let scope: Vec<Filter<'_>> = filters
            .iter()
            .filter(|(column, _)| kind.cursor_scope().contains(column))
            .copied()
            .collect();
        push_where(&mut qb, project, &scope);
        qb.push(" AND id = ").push_bind(cursor).push(")");
    }
    qb.push(if ascending {
        " ORDER BY seq ASC"
    } else {
        " ORDER BY seq DESC"
    });
    qb.push(" LIMIT ").push_bind(params.limit as i64 + 1);

    let rows = qb.build().fetch_all(db).await?;
    let has_more = rows.len() > params.limit;
    let mut items = Vec::with_capacity(rows.len().min(params.limit));
    for row in rows.into_iter().take(params.limit) {
        let id: String = row.try_get("id")?;
        let Json(object): Json<T> = row.try_get("data")?;
        items.push((id, object));
    }
    if !walk_forward {
        items.reverse();
    }
    Ok(ListPage::new(items, has_more))
}
