//! The change feed: `LISTEN assistd_changes`, filled by the triggers of migration 0002 with the
//! tag of every committed change, from this server or any other on the same database.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::ReadCache;

pub const CHANNEL: &str = "assistd_changes";

/// Follows the feed until `stop`, dropping each announced tag from `cache`. The cache
/// serves only while the feed listens: whenever the connection drops (notices sent meanwhile
/// are lost) it goes dark, and it comes back empty once listening again.
pub async fn follow(pool: PgPool, cache: ReadCache, stop: CancellationToken) {
    stop.run_until_cancelled(run(pool, cache.clone())).await;
    cache.set_live(false);
}

async fn run(pool: PgPool, cache: ReadCache) {
    loop {
        let mut listener = match listen(&pool).await {
            Ok(listener) => listener,
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "change feed: cannot listen; the read cache stays off");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        cache.set_live(true);
        let lost = loop {
            match listener.try_recv().await {
                Ok(Some(notice)) => cache.invalidate(notice.payload()),
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        cache.set_live(false);
        match lost {
            Some(sqlx::Error::PoolClosed) => return,
            Some(e) => {
                tracing::warn!(error = %e, "change feed: lost; the read cache is off until it is back")
            }
            None => tracing::warn!(
                "change feed: connection lost; the read cache is off until it is back"
            ),
        }
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
