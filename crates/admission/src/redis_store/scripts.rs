//! The Lua scripts, loaded once per process and invoked by SHA (reloaded if Redis forgot them).

use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("common.lua");

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

pub(crate) static RESERVE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("reserve.lua")));
pub(crate) static CONFIRM: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("confirm.lua")));
pub(crate) static CANCEL: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("cancel.lua")));
pub(crate) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("release.lua")));
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| with_common(include_str!("reap.lua")));
pub(crate) static LEAVE_LINE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("leave_line.lua")));
pub(crate) static CHECK_PLACE: LazyLock<Script> =
    LazyLock::new(|| with_common(include_str!("check_place.lua")));
pub(crate) static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("heartbeat.lua")));
pub(crate) static DEAD_NODES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("dead_nodes.lua")));
pub(crate) static PENDING_REGISTER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("pending_register.lua")));
pub(crate) static PENDING_MATERIALIZE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("pending_materialize.lua")));

/// An `EVALSHA` of `script` on `keys`, for use inside a pipeline; add the arguments after.
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(script.get_hash()).arg(keys.len()).arg(keys);
    command
}

/// Sends `pipe` (which ends with an `EVALSHA` of `script`) in one round trip, loading the
/// script and sending again once if Redis does not know it (first use, or after a restart).
pub(crate) async fn query_loading<T: redis::FromRedisValue>(
    connection: &mut redis::aio::ConnectionManager,
    pipe: &redis::Pipeline,
    script: &Script,
) -> Result<T, crate::error::StoreError> {
    match pipe.query_async(connection).await {
        Err(error)
            if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
        {
            script
                .load_async(connection)
                .await
                .map_err(super::unavailable)?;
            pipe.query_async(connection)
                .await
                .map_err(super::unavailable)
        }
        other => other.map_err(super::unavailable),
    }
}
