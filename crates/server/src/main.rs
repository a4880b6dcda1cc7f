//! `roomgate`: load the configuration, start logging, serve until SIGINT/SIGTERM.

use roomgate_server::{Application, Settings, telemetry};

/// With `--features dhat-heap`, every allocation goes through dhat's counting allocator, so that
/// its profile says who holds the heap, and from where (`crates/server/profiling/idle.sh`).
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The profile is written when the profiler is dropped: on SIGUSR1, so that it shows the
    // heap as it is at that moment (members idling, say), or else when `main` returns.
    #[cfg(all(feature = "dhat-heap", unix))]
    {
        let profiler = dhat::Profiler::builder()
            .file_name(
                std::env::var_os("ROOMGATE_DHAT_FILE").unwrap_or_else(|| "dhat-heap.json".into()),
            )
            .trim_backtraces(Some(24))
            .build();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
                usr1.recv().await;
            } else {
                std::future::pending::<()>().await;
            }
            drop(profiler);
        });
    }
    let settings = Settings::load()?;
    telemetry::init(&settings.log, std::io::stdout);
    let app = Application::build(settings).await?;
    let address = app.local_addr();
    tracing::info!(%address, node = %app.node(), "started");
    println!("Roomgate listening on http://{address}");
    app.run_until_stopped(shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
