//! Connection pools for both backends, connection set-up and embedded migrations.

use std::sync::Arc;
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Manager, Metrics, Object, Pool, PoolError, RecycleResult};
use diesel::{Connection, RunQueryDsl as _, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as DieselPoolError, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::Semaphore;

use crate::error::{PersistenceError, connection_error};
use crate::settings::{Backend, DatabaseSettings};

pub(crate) type MysqlConn = AsyncMysqlConnection;
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Set on every MySQL/MariaDB connection as it opens. A join's `RETURNING` builds the
/// newcomer's members and history as JSON (`JSON_ARRAYAGG`), which MariaDB cuts at
/// `group_concat_max_len` (1 MiB by default) and, in strict mode, then refuses the statement:
/// 50 messages of 4,000 characters that JSON escapes to six bytes each pass 1 MiB. The result
/// is still bounded by `max_allowed_packet` (16 MiB by default).
const MYSQL_SESSION: &str = "SET SESSION group_concat_max_len = 1073741824";

pub(crate) enum Pools {
    Mysql(Pool<Recycler<MysqlConn>>),
    Sqlite {
        pool: Pool<Recycler<SqliteConn>>,
        /// SQLite admits one writer at a time. Queueing writers here, in FIFO order, replaces
        /// SQLite's busy handler (which sleeps and polls, and starves some waiters under load)
        /// for writers of this process; `busy_timeout` still covers other processes.
        writer: Arc<Semaphore>,
    },
}

impl Pools {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pools::Mysql(_) => Backend::Mysql,
            Pools::Sqlite { .. } => Backend::Sqlite,
        }
    }
}

/// Which backend a URL names, and the location the driver expects.
pub(crate) fn parse_url(url: &str) -> Result<(Backend, &str), PersistenceError> {
    if url.starts_with("mysql://") {
        Ok((Backend::Mysql, url))
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() || path.starts_with(":memory:") {
            return Err(PersistenceError::Config(
                "a sqlite url needs a file path, e.g. sqlite://data/roomgate.db".to_owned(),
            ));
        }
        Ok((Backend::Sqlite, path))
    } else {
        Err(PersistenceError::Config(
            "database url must start with mysql:// or sqlite://".to_owned(),
        ))
    }
}

pub(crate) async fn open(settings: &DatabaseSettings) -> Result<Pools, PersistenceError> {
    if settings.max_connections == 0 {
        return Err(PersistenceError::Config(
            "database.max_connections must be at least 1".to_owned(),
        ));
    }
    let (backend, location) = parse_url(&settings.url)?;
    let pools = match backend {
        Backend::Mysql => {
            let manager = Recycler::new(location, || {
                let mut config = ManagerConfig::<MysqlConn>::default();
                config.custom_setup = Box::new(|url| {
                    let url = url.to_owned();
                    Box::pin(async move {
                        let mut conn = MysqlConn::establish(&url).await?;
                        conn.batch_execute(MYSQL_SESSION)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                config
            });
            Pools::Mysql(build(manager, settings)?)
        }
        Backend::Sqlite => {
            create_parent_dir(location)?;
            let busy_ms = settings.acquire_timeout.as_millis().max(1000);
            let manager = Recycler::new(location, || {
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.custom_setup = Box::new(move |path| {
                    let path = path.to_owned();
                    Box::pin(async move {
                        let mut conn = SqliteConn::establish(&path).await?;
                        conn.batch_execute(&sqlite_pragmas(busy_ms))
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                config
            });
            Pools::Sqlite {
                pool: build(manager, settings)?,
                writer: Arc::new(Semaphore::new(1)),
            }
        }
    };
    // One checkout proves the server answers before migrations (which have no timeout of their
    // own) run, so an unreachable database fails within the acquire timeout.
    match &pools {
        Pools::Mysql(pool) => drop(checkout(pool, settings.acquire_timeout).await?),
        Pools::Sqlite { pool, .. } => drop(checkout(pool, settings.acquire_timeout).await?),
    }
    run_migrations(backend, location.to_owned(), settings.acquire_timeout).await?;
    Ok(pools)
}

/// Whether the server takes `INSERT … RETURNING`: SQLite does (3.35 and later; the bundled one
/// is newer), MariaDB from 10.5, MySQL not at all. Asked once, at start-up.
pub(crate) async fn has_returning(
    pools: &Pools,
    timeout: Duration,
) -> Result<bool, PersistenceError> {
    match pools {
        Pools::Sqlite { .. } => Ok(true),
        Pools::Mysql(pool) => {
            let mut conn = checkout(pool, timeout).await?;
            let version: String = diesel_async::RunQueryDsl::get_result(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()")),
                &mut *conn,
            )
            .await?;
            Ok(mariadb_with_returning(&version))
        }
    }
}

/// Whether a `VERSION()` string names MariaDB 10.5 or later (e.g. `10.11.6-MariaDB-0+deb12u1`).
fn mariadb_with_returning(version: &str) -> bool {
    if !version.to_ascii_lowercase().contains("mariadb") {
        return false;
    }
    // Some MariaDB releases prefix their version with `5.5.5-` for old MySQL clients.
    let version = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (10, 5),
        _ => false,
    }
}

/// How long a connection may sit idle in the pool and still be handed out without a test query.
const TRUSTED_IDLE: Duration = Duration::from_secs(2);

/// Hands out pooled connections, testing (`SELECT 1`) only those idle for longer than
/// [`TRUSTED_IDLE`]. Testing every checkout costs a round trip per operation (a sixth of a join
/// on MySQL); a connection returned moments ago is almost always still good, and one that is not
/// (the server restarted in between) fails its statement with `Unavailable`, which is
/// retryable. Connections diesel knows to be broken, or with a transaction left open, are
/// always discarded.
pub(crate) struct Recycler<C> {
    tested: AsyncDieselConnectionManager<C>,
    trusted: AsyncDieselConnectionManager<C>,
}

impl<C: AsyncConnection + 'static> Recycler<C> {
    /// `config` is called twice; the two managers differ only in how they recycle.
    fn new(url: &str, config: impl Fn() -> ManagerConfig<C>) -> Self {
        let manager = |recycling_method| {
            let mut config = config();
            config.recycling_method = recycling_method;
            AsyncDieselConnectionManager::new_with_config(url, config)
        };
        Self {
            tested: manager(RecyclingMethod::Verified),
            trusted: manager(RecyclingMethod::Fast),
        }
    }
}

impl<C> std::fmt::Debug for Recycler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recycler").finish_non_exhaustive()
    }
}

impl<C> Manager for Recycler<C>
where
    C: Send + 'static,
    AsyncDieselConnectionManager<C>: Manager<Type = C, Error = DieselPoolError>,
{
    type Type = C;
    type Error = DieselPoolError;

    async fn create(&self) -> Result<C, DieselPoolError> {
        self.tested.create().await
    }

    async fn recycle(&self, conn: &mut C, metrics: &Metrics) -> RecycleResult<DieselPoolError> {
        if metrics.last_used() <= TRUSTED_IDLE {
            self.trusted.recycle(conn, metrics).await
        } else {
            self.tested.recycle(conn, metrics).await
        }
    }
}

/// Per-connection SQLite settings: WAL lets readers run beside the writer; `busy_timeout` makes a
/// locked database wait instead of failing at once; foreign keys are off unless asked for;
/// `synchronous = NORMAL` is WAL's recommended durability (a power cut may lose the last
/// commits, never consistency).
fn sqlite_pragmas(busy_ms: u128) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    )
}

fn create_parent_dir(path: &str) -> Result<(), PersistenceError> {
    let parent = std::path::Path::new(path).parent();
    if let Some(dir) = parent.filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            PersistenceError::Config(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

fn build<M: Manager>(manager: M, settings: &DatabaseSettings) -> Result<Pool<M>, PersistenceError> {
    Pool::builder(manager)
        .max_size(usize::try_from(settings.max_connections).unwrap_or(usize::MAX))
        .wait_timeout(Some(settings.acquire_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| PersistenceError::Config(format!("database pool: {e}")))
}

/// A pooled connection, or `Unavailable` once `timeout` has passed: deadpool's own timeouts
/// bound waiting and connecting separately, this bounds their sum.
pub(crate) async fn checkout<M>(
    pool: &Pool<M>,
    timeout: Duration,
) -> Result<Object<M>, PersistenceError>
where
    M: Manager,
    M::Error: std::fmt::Display,
{
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(PoolError::Backend(e))) => Err(PersistenceError::Unavailable(format!(
            "cannot connect to the database: {e}"
        ))),
        Ok(Err(e)) => Err(PersistenceError::Unavailable(format!(
            "no database connection: {e}"
        ))),
        Err(_) => Err(PersistenceError::Unavailable(format!(
            "no database connection within {timeout:?}"
        ))),
    }
}

/// Runs the embedded migrations on a blocking thread: diesel's migration harness is
/// synchronous, and `AsyncConnectionWrapper` must not block a runtime worker (it would panic on
/// a current-thread runtime).
async fn run_migrations(
    backend: Backend,
    location: String,
    lock_wait: Duration,
) -> Result<(), PersistenceError> {
    let task = tokio::task::spawn_blocking(move || match backend {
        Backend::Mysql => {
            let mut conn = <AsyncConnectionWrapper<MysqlConn> as Connection>::establish(&location)
                .map_err(|e| connection_error(&e))?;
            migrate_mysql(&mut conn, lock_wait)
        }
        Backend::Sqlite => {
            let mut conn =
                SqliteConnection::establish(&location).map_err(|e| connection_error(&e))?;
            diesel::connection::SimpleConnection::batch_execute(
                &mut conn,
                &sqlite_pragmas(lock_wait.as_millis().max(1000)),
            )?;
            apply(&mut conn, SQLITE_MIGRATIONS)
        }
    });
    task.await
        .map_err(|e| PersistenceError::Internal(format!("migration task failed: {e}")))?
}

/// Nodes starting at the same time would otherwise race to apply the same migration; MySQL's
/// named lock makes the second wait and then find nothing pending.
fn migrate_mysql(
    conn: &mut AsyncConnectionWrapper<MysqlConn>,
    lock_wait: Duration,
) -> Result<(), PersistenceError> {
    use diesel::sql_types::{Integer, Nullable};
    let wait_secs = lock_wait.as_secs().max(1);
    let locked: Option<i32> = diesel::select(diesel::dsl::sql::<Nullable<Integer>>(&format!(
        "GET_LOCK('roomgate_migrations', {wait_secs})"
    )))
    .get_result(conn)?;
    if locked != Some(1) {
        return Err(PersistenceError::Unavailable(
            "another node is still migrating the database".to_owned(),
        ));
    }
    let result = apply(conn, MYSQL_MIGRATIONS);
    let _released: Option<i32> = diesel::select(diesel::dsl::sql::<Nullable<Integer>>(
        "RELEASE_LOCK('roomgate_migrations')",
    ))
    .get_result(conn)?;
    result
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<(), PersistenceError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|applied| {
            if !applied.is_empty() {
                tracing::info!(count = applied.len(), "applied database migrations");
            }
        })
        .map_err(|e| PersistenceError::Internal(format!("running migrations: {e}")))
}

#[cfg(test)]
mod tests {
    use super::mariadb_with_returning;

    #[test]
    fn returning_is_used_on_mariadb_10_5_and_later_only() {
        assert!(mariadb_with_returning("10.11.19-MariaDB-0+deb12u1"));
        assert!(mariadb_with_returning("10.5.0-MariaDB"));
        assert!(mariadb_with_returning("5.5.5-10.6.16-MariaDB"));
        assert!(mariadb_with_returning("11.4.2-MariaDB-ubu2404"));
        assert!(!mariadb_with_returning("10.4.32-MariaDB"));
        assert!(!mariadb_with_returning("8.0.36"));
        assert!(!mariadb_with_returning("8.4.0-MySQL"));
    }
}
